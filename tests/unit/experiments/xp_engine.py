"""A small deterministic engine for framework tests: records from (config, seed), invocations counted.

It stands in for sim.run so the framework is tested on its own; every call appends a line to
$LAZYLAB_XP_COUNTER (if set) so tests can count real executions instead of timing them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from experiments.framework import Calibration, Experiment, Plot, RunData, RunOutput, Table
from experiments.tables import estimate, group_runs, summary_table
from startup.modes import PullMode
from startup.record import StartupRecord


def _count(config: dict[str, Any], seed: int) -> None:
    path = os.environ.get("LAZYLAB_XP_COUNTER")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{config.get('mode')} {config.get('link', {}).get('rtt_s')} {seed}\n")


def run(config: dict[str, Any], seed: int, calibration: Calibration) -> RunOutput:
    _count(config, seed)
    if config.get("fail"):
        raise RuntimeError(f"asked to fail (mode={config['mode']})")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    link = config["link"]
    size = int(config["image_bytes"])
    params = calibration.params
    overhead = float(params["overhead_s"]) if isinstance(params, dict) else 0.0
    mode = PullMode.parse(config["mode"])
    fetched = size if mode in (PullMode.FULL, PullMode.PARTIAL) else size // 10
    records = []
    for pod in range(int(config.get("pods", 2))):
        pulled = link["rtt_s"] + overhead + fetched / link["bandwidth_bytes_per_s"]
        ready = pulled + float(rng.uniform(0.1, 0.2))
        records.append(StartupRecord(engine="sim", scenario="xp", seed=seed, node="n0", pod=f"p{pod}",
                                     image="img", mode=mode, submitted_s=0.0, resolved_s=link["rtt_s"],
                                     pulled_s=pulled, created_s=pulled, ready_s=ready,
                                     bytes_layers=fetched, requests=1))
    return RunOutput(records=records, tables={"egress": [{"t_s": 0.0, "bytes": fetched}]},
                     sim_time_s=max(r.ready_s for r in records))


BASE = {"mode": "full", "image_bytes": 1_000_000, "pods": 2,
        "link": {"rtt_s": 0.001, "bandwidth_bytes_per_s": 1e7}}


def tabulate(runs: Sequence[RunData]) -> list[Table]:
    return [summary_table(runs, title="Time to ready by mode", by=("mode",),
                          metrics=("pull_s", "time_to_ready_s", "bytes_fetched"))]


def plot(runs: Sequence[RunData]) -> list[Plot]:
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    groups = group_runs(runs, ("mode",))
    ax.bar([k[0] for k in groups], [estimate(g, "time_to_ready_s").mean for g in groups.values()])
    ax.set_ylabel("time to ready (s)")
    return [Plot(name="ready", figure=fig, caption="Mean time to ready per mode")]


def after(runs: Sequence[RunData]) -> str:
    return f"after: {len(runs)} successful runs"


EXPERIMENT = Experiment(name="xp", description="Framework test experiment.\nSecond line.", run=run, base=BASE,
                        factors={"mode": ["full", "lazy"]}, replications=3, tabulate=tabulate, plot=plot,
                        after=after, quick_factors={"mode": ["lazy"]}, quick_replications=1)

FAILING = Experiment(name="xp-fail", run=run, base={**BASE, "fail": True}, factors={"fail": [False, True]})
