"""`example`: a small simulator sweep showing how an experiment is declared (modes x RTT).

One synthetic 60 MB image, one node, a synthetic workload reading 5% of it; the four pull
modes at two RTTs, three seeds each. The report tabulates pull/create/ready per mode and RTT
and plots time to ready against RTT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from experiments.engines import run_sim, sim_effective
from experiments.framework import Experiment, Plot, RunData, Table
from experiments.tables import estimate, group_runs, summary_table

BASE: dict[str, Any] = {
    "name": "example",
    "mode": "lazy",
    "cluster": {"nodes": 1, "link_bandwidth_bytes_per_s": 12.5e6, "rtt_s": 0.001},
    "images": [{"kind": "synthetic", "name": "app",
                "layers": [{"name": "base", "files": 400, "total_bytes": 60_000_000}]}],
    "workload": {"kind": "synthetic", "reads": 100, "working_set_fraction": 0.05},
}


def tabulate(runs: Sequence[RunData]) -> list[Table]:
    return [summary_table(runs, title="Startup by mode and RTT", by=("mode", "cluster.rtt_s"))]


def plot(runs: Sequence[RunData]) -> list[Plot]:
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for (mode,), group in group_runs(runs, ("mode",)).items():
        by_rtt = group_runs(group, ("cluster.rtt_s",))
        xs = [k[0] * 1e3 for k in by_rtt]
        ax.plot(xs, [estimate(g, "time_to_ready_s").mean for g in by_rtt.values()], marker="o", label=mode)
    ax.set_xlabel("RTT (ms)")
    ax.set_ylabel("time to ready (s)")
    ax.legend()
    return [Plot(name="ready-vs-rtt", figure=fig, caption="Mean time to ready against RTT, per mode")]


EXPERIMENT = Experiment(
    name="example",
    description="Example sweep over the simulator: four pull modes x two RTTs on a 60 MB image.",
    run=run_sim, effective=sim_effective, base=BASE,
    factors={"mode": ["full", "partial", "lazy", "lazy-prefetch"], "cluster.rtt_s": [0.001, 0.05]},
    replications=3, tabulate=tabulate, plot=plot,
    quick_factors={"mode": ["full", "lazy"], "cluster.rtt_s": [0.001]}, quick_replications=1,
    code_packages=("sim", "startup", "imageformat"),  # an emulator edit does not invalidate these runs
)
