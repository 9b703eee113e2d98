"""Study 6: switching lazy pulling on or off for a machine config pool — rollout time, the re-pull
traffic after `crio check-layer-state` wipes lazily pulled images, and the pod-start SLIs during
the change.

A pool of N nodes (12 or 48) runs 2 pods each of a 1 GB service image (40% compressed; its start
reads 5%); node links 1 Gbit/s, a 10 Gbit/s registry, RTT 10 ms. At t = 120 s (every pod ready,
lazy nodes' background fetch done) the Machine Config Operator rolls the change out,
`max_unavailable` nodes at a time: drain (5 s), reboot (45 s), then check-layer-state compares the
node's storage marker with the new configuration (nodeconfig.layerstate: a changed marker removes
every image with layers in an Additional Layer Store), and the node's pods restart (`*-r`) in the
new mode. Directions:
- `off`: lazy -> full. Every image was pulled lazily, so every node re-pulls it in full;
- `on`: full -> lazy. Fully pulled images survive the marker change (no ALS layers): the restarted
  pods find their image present (IfNotPresent) and fetch nothing;
- `store-change`: lazy -> lazy with a changed store (e.g. a new store format): the lazily pulled
  images are wiped and pulled lazily again.
Rollout time: from the start of the change until the last restarted pod is ready. SLIs: the
kubelet's pod-start duration (created - submitted, `kubelet_pod_start_duration_seconds`) and time
to ready of the restarted pods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from experiments.framework import Experiment, Plot, RunData, Table
from experiments.stats import mean_ci
from experiments.study_common import answer, apply_case, bytes_before_ready, cell, est, groups, run_study
from startup.record import StartupRecord

TOGGLE_AT_S = 120.0
DIRECTIONS = {"off": ("lazy", "full"), "on": ("full", "lazy"), "store-change": ("lazy", "lazy")}
NODES = [12, 48]
MAX_UNAVAILABLE = [1, 4]

BASE: dict[str, Any] = {
    "name": "study-6",
    "mode": "lazy",
    "cluster": {"nodes": 12, "link_bandwidth_bytes_per_s": 125e6, "rtt_s": 0.01},
    "registry": {"egress_bandwidth_bytes_per_s": 1.25e9},
    "images": [
        {
            "kind": "synthetic",
            "name": "svc",
            "layers": [
                {"name": "svc-1GB", "files": 6000, "total_bytes": 1_000_000_000, "compression_ratio": 0.4}
            ],
        }
    ],
    "workload": {
        "kind": "synthetic",
        "reads": 382,
        "working_set_fraction": 0.05,
        "zipf_s": 0.0,
        "read_bytes": 131_072,
        "think_s": 0.002,
    },
    "arrivals": {"kind": "rollout", "replicas": 24},
    "toggle": {
        "at_s": TOGGLE_AT_S,
        "max_unavailable": 1,
        "drain_s": 5.0,
        "reboot_s": 45.0,
        "to_mode": "full",
    },
    "study": {"direction": "off", "nodes": 12},
}


def effective(config: dict[str, Any]) -> dict[str, Any]:
    study = config.get("study", {})
    before, after = DIRECTIONS[study.get("direction", "off")]
    n = int(study.get("nodes", 12))
    out = {
        **config,
        "mode": before,
        "cluster": {**config["cluster"], "nodes": n},
        "arrivals": {**config["arrivals"], "replicas": 2 * n},
        "toggle": {**config["toggle"], "to_mode": after},
    }
    return apply_case(out, {})


def _restarted(r: StartupRecord) -> bool:
    return r.pod.endswith("-r")


def _original(r: StartupRecord) -> bool:
    return not r.pod.endswith("-r")


def rollout_s(run: RunData) -> float:
    """Start of the change -> last restarted pod ready."""
    ready = [r.ready_s for r in run.records if _restarted(r) and r.ok]
    return max(ready) - TOGGLE_AT_S if ready else float("nan")


def repull_bytes(run: RunData) -> float:
    return float(sum(r.bytes_fetched for r in run.records if _restarted(r)))


def repull_before_ready_bytes(run: RunData) -> float:
    return float(sum(bytes_before_ready(r) for r in run.records if _restarted(r)))


def initial_bytes(run: RunData) -> float:
    return float(sum(r.bytes_fetched for r in run.records if _original(r)))


def tabulate(runs: Sequence[RunData]) -> list[Table]:
    rows = []
    for (direction, n, mu), g in groups(
        runs, "study.direction", "study.nodes", "toggle.max_unavailable"
    ).items():
        failed = sum(1 for r in g for rec in r.records if not rec.ok)
        rows.append(
            (
                direction,
                n,
                mu,
                len(g),
                cell(mean_ci([rollout_s(r) for r in g])),
                cell(mean_ci([repull_bytes(r) for r in g]), 1e9),
                cell(mean_ci([repull_before_ready_bytes(r) for r in g]), 1e9),
                cell(mean_ci([initial_bytes(r) for r in g]), 1e9),
                cell(est(g, "start_s", "p50", where=_restarted)),
                cell(est(g, "start_s", "p95", where=_restarted)),
                cell(est(g, "ready_s", "p95", where=_restarted)),
                cell(est(g, "ready_s", "p95", where=_original)),
                failed,
            )
        )
    table = Table(
        title="The change: rollout time, re-pull traffic, pod-start SLIs of the restarted pods",
        columns=(
            "direction",
            "nodes",
            "max unavailable",
            "seeds",
            "rollout s",
            "re-pull GB",
            "of which before ready GB",
            "initial pull GB",
            "pod start p50 s",
            "pod start p95 s",
            "ready p95 s (restarted)",
            "ready p95 s (before)",
            "failed pods",
        ),
        rows=tuple(rows),
        note="Pod start = created - submitted (kubelet_pod_start_duration_seconds); ready = time to ready. "
        "Re-pull GB: registry bytes of the restarted pods (background fetch included). "
        "Mean ± 95% t-interval across seeds.",
    )
    return [_answer(runs), table]


def _answer(runs: Sequence[RunData]) -> Table:
    rows, parts = [], []
    g = groups(runs, "study.direction", "study.nodes", "toggle.max_unavailable")
    for direction in DIRECTIONS:
        sel = g.get((direction, 48, 4))
        if not sel:
            continue
        ro, rp = mean_ci([rollout_s(r) for r in sel]), mean_ci([repull_bytes(r) for r in sel])
        rb = mean_ci([repull_before_ready_bytes(r) for r in sel])
        p95 = est(sel, "start_s", "p95", where=_restarted)
        rows.append(
            (
                f"{direction}, 48 nodes, 4 at a time: rollout s / re-pull GB (before ready) / "
                "pod-start p95 s",
                f"{cell(ro)} / {cell(rp, 1e9)} ({cell(rb, 1e9)}) / {cell(p95)}",
            )
        )
        parts.append(
            f"{direction}: {cell(ro)} s, {cell(rp, 1e9)} GB re-pulled ({cell(rb, 1e9)} GB of it before the "
            f"pods were ready), restarted pods' p95 pod start {cell(p95)} s"
        )
    text = (
        (
            "For a 48-node pool changed 4 nodes at a time: "
            + "; ".join(parts)
            + ". Rollout time is set by the "
            "drain + reboot batches (ceil(N / max unavailable) x 50 s) plus the last batch's pull. "
            "Switching lazy pulling off wipes every lazily pulled image, so the whole image is "
            "re-pulled in full on every node and the restarted pods pay a full pull; switching it on "
            "keeps the fully pulled images (no ALS layers), so nothing is re-pulled; a store change "
            "re-pulls lazily (small before ready, the rest in the background)."
        )
        if parts
        else "(no runs)"
    )
    return answer(
        "What does switching lazy pulling on or off for a machine config pool cost: rollout time, "
        "re-pull traffic after check-layer-state, pod-start SLIs during the change?",
        text,
        rows,
    )


def plot(runs: Sequence[RunData]) -> list[Plot]:
    fig = Figure(figsize=(10, 3.6))
    g = groups(runs, "study.direction", "study.nodes", "toggle.max_unavailable")
    for i, (direction, n, mu) in enumerate(
        k for k in g if k[1] == max(NODES) and k[2] == max(MAX_UNAVAILABLE)
    ):
        ax = fig.add_subplot(1, len(DIRECTIONS), i + 1)
        run = g[(direction, n, mu)][0]
        pts = sorted(
            (r.submitted_s, r.created_s - r.submitted_s, r.time_to_ready_s) for r in run.records if r.ok
        )
        ax.plot([p[0] for p in pts], [p[2] for p in pts], ".", markersize=3, label="time to ready")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "x", markersize=3, label="pod start")
        ax.axvline(TOGGLE_AT_S, color="grey", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_title(f"{direction} ({n} nodes, {mu} at a time)", fontsize=9)
        ax.set_xlabel("pod submitted at (s)")
        if i == 0:
            ax.set_ylabel("seconds")
            ax.legend(fontsize=7)
    return [
        Plot(
            name="timeline",
            figure=fig,
            caption="Each pod start before and during the change (seed 0): time to ready and "
            "pod-start duration",
        )
    ]


EXPERIMENT = Experiment(
    name="study_6_pool_toggle",
    description="Study 6: switching lazy pulling on/off for a machine config pool — rollout time, "
    "re-pull traffic "
    "after check-layer-state, pod-start SLIs during the change.",
    run=run_study,
    effective=effective,
    base=BASE,
    factors={
        "study.direction": list(DIRECTIONS),
        "study.nodes": NODES,
        "toggle.max_unavailable": MAX_UNAVAILABLE,
    },
    replications=3,
    tabulate=tabulate,
    plot=plot,
    quick_factors={"study.direction": ["off", "on"], "study.nodes": [4], "toggle.max_unavailable": [2]},
    quick_replications=1,
    code_packages=("sim", "startup", "imageformat"),
)
