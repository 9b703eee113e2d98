"""Study 2: registry capacity planning — how many nodes can start a pod at once, per registry egress
and RTT, before the p95 time to ready breaks an SLO, per pull mode; drawn as a frontier.

A rollout of N pods on N nodes (one each, all at t = 0), node links of 1 Gbit/s, one registry of
1, 10 or 40 Gbit/s egress (0.5 ms service time, no overload collapse), RTT 2 or 50 ms. The image:
a synthetic 500 MB (files; 200 MB compressed) one-layer service whose start reads 5% of it.
Lazy modes keep stargz-store's defaults (background fetch of the whole blob, 2 workers per node,
paused during on-demand reads) — the background traffic competes for the registry's egress;
`lazy-nobg` is lazy with background fetch off (only what the starts read is fetched).
Identical nodes starting together are simulated as one cohort (exact, docs/model.md), so the p95
over nodes equals the common value; seeds vary the synthetic image and trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from experiments.framework import Experiment, Plot, RunData, Table
from experiments.study_common import answer, apply_case, cell, est, groups, run_study, value

MODES = ["full", "partial", "lazy", "lazy-prefetch", "lazy-nobg"]  # lazy-nobg: lazy, background fetch off
NODES = [10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000]
EGRESS = {"1Gbit": 125e6, "10Gbit": 1.25e9, "40Gbit": 5e9}
RTTS_S = [0.002, 0.05]
SLOS_S = [10.0, 30.0, 60.0]
SLO_S = 30.0

BASE: dict[str, Any] = {
    "name": "study-2",
    "mode": "full",
    "cluster": {"nodes": 10, "link_bandwidth_bytes_per_s": 125e6, "rtt_s": 0.002},
    "registry": {"egress_bandwidth_bytes_per_s": 1.25e9, "service_time_s": 0.0005},
    "images": [
        {
            "kind": "synthetic",
            "name": "svc",
            "layers": [
                {"name": "svc-layer", "files": 3000, "total_bytes": 500_000_000, "compression_ratio": 0.4}
            ],
        }
    ],
    "workload": {
        "kind": "synthetic",
        "reads": 191,
        "working_set_fraction": 0.05,
        "zipf_s": 0.0,
        "read_bytes": 131_072,
        "think_s": 0.002,
    },
    "arrivals": {"kind": "rollout", "replicas": 10},
    "study": {"nodes": 10},
}


def effective(config: dict[str, Any]) -> dict[str, Any]:
    """`study.nodes` sets both the node count and the replicas (one pod per node); the mode
    `lazy-nobg` is `lazy` with background fetch off (the label stays in `study.variant`)."""
    n = int(config.get("study", {}).get("nodes", 1))
    variant = config.get("mode", "full")
    out = {
        **config,
        "mode": "lazy" if variant == "lazy-nobg" else variant,
        "cluster": {**config.get("cluster", {}), "nodes": n},
        "arrivals": {**config.get("arrivals", {}), "replicas": n},
    }
    if variant == "lazy-nobg":
        out["pull"] = {**config.get("pull", {}), "background_fetch": False}
    return apply_case(out, {})


def _egress_name(run: RunData) -> str:
    rate = float(run.config["registry"]["egress_bandwidth_bytes_per_s"])
    return next((k for k, v in EGRESS.items() if v == rate), f"{rate * 8 / 1e9:g}Gbit")


def capacity(runs: Sequence[RunData], slo_s: float) -> dict[tuple[str, float, str], tuple[int, int]]:
    """(egress, rtt, mode) -> (largest N with p95 ready <= slo, smallest N above it; 0 = none)."""
    out: dict[tuple[str, float, str], tuple[int, int]] = {}
    for (rtt, mode), g in groups(runs, "cluster.rtt_s", "mode").items():
        by_egress: dict[str, list[RunData]] = {}
        for r in g:
            by_egress.setdefault(_egress_name(r), []).append(r)
        for eg, rs in by_egress.items():
            ok, bad = 0, 0
            for (n,), gn in sorted(groups(rs, "study.nodes").items()):
                p95 = est(gn, "ready_s", "p95").mean
                if p95 <= slo_s and not bad:
                    ok = int(n)
                elif p95 > slo_s and not bad:
                    bad = int(n)
            out[(eg, float(rtt), str(mode))] = (ok, bad)
    return out


def _fmt_cap(ok: int, bad: int) -> str:
    if not bad:
        return f">= {ok}"
    return f"{ok} (fails at {bad})" if ok else f"< {bad}"


def tabulate(runs: Sequence[RunData]) -> list[Table]:
    caps = {slo: capacity(runs, slo) for slo in SLOS_S}
    keys = sorted(
        caps[SLO_S], key=lambda k: (k[1], EGRESS.get(k[0], 0), MODES.index(k[2]) if k[2] in MODES else 9)
    )
    rows = tuple(
        (eg, f"{rtt * 1e3:g}", mode, *(_fmt_cap(*caps[slo][(eg, rtt, mode)]) for slo in SLOS_S))
        for eg, rtt, mode in keys
    )
    frontier = Table(
        title="Largest rollout (nodes starting at once) within the p95 time-to-ready SLO",
        columns=("registry egress", "RTT ms", "mode", *(f"SLO {s:g} s" for s in SLOS_S)),
        rows=rows,
        note=f"N tested: {', '.join(map(str, NODES))}; p95 over the nodes of a run, mean over seeds.",
    )
    return [_answer(caps[SLO_S], runs), frontier, _detail(runs)]


def _detail(runs: Sequence[RunData]) -> Table:
    rows = []
    for (rtt, mode, n), g in groups(runs, "cluster.rtt_s", "mode", "study.nodes").items():
        by_eg: dict[str, list[RunData]] = {}
        for r in g:
            by_eg.setdefault(_egress_name(r), []).append(r)
        rows.append(
            (
                f"{float(rtt) * 1e3:g}",
                mode,
                n,
                *(cell(est(by_eg[e], "ready_s", "p95")) if e in by_eg else "n/a" for e in EGRESS),
                cell(est(g, "bytes_before_ready"), 1e6),
                cell(est(g, "bytes_fetched"), 1e6),
            )
        )
    return Table(
        title="p95 time to ready (s) per registry egress; MB per node before ready / in all",
        columns=(
            "RTT ms",
            "mode",
            "nodes",
            *(f"p95 ready s @{e}" for e in EGRESS),
            "MB before ready",
            "MB fetched (incl. background)",
        ),
        rows=tuple(rows),
        note="Cells: mean ± 95% t-interval across seeds.",
    )


def _answer(cap: dict[tuple[str, float, str], tuple[int, int]], runs: Sequence[RunData]) -> Table:
    rows = []
    parts = []
    for eg in EGRESS:
        for rtt in RTTS_S:
            vals = {m: v for m in MODES if (v := cap.get((eg, rtt, m))) is not None}
            if vals:
                rows.append(
                    (
                        f"{eg}, RTT {rtt * 1e3:g} ms: N within p95 <= {SLO_S:g} s",
                        ", ".join(f"{m} {_fmt_cap(*v)}" for m, v in vals.items()),
                    )
                )
    g = groups(runs, "cluster.rtt_s", "mode", "study.nodes")
    at_1000 = {}
    for mode in MODES:
        sel = [r for r in g.get((0.002, mode, 1000), []) if _egress_name(r) == "10Gbit"]
        if sel:
            at_1000[mode] = cell(est(sel, "ready_s", "p95"))
            rows.append((f"1000 nodes, 10 Gbit/s, 2 ms: p95 ready ({mode}, s)", at_1000[mode]))
    if rows:
        ten = {m: v for m in MODES if (v := cap.get(("10Gbit", 0.002, m))) is not None}
        parts.append(
            "With a 10 Gbit/s registry and 2 ms RTT, the largest simultaneous rollout whose p95 time to "
            f"ready stays within {SLO_S:g} s is "
            + "; ".join(f"{m}: {_fmt_cap(*v)}" for m, v in ten.items() if v)
            + " nodes."
        )
        parts.append(
            "The frontier scales with egress for full and partial pulls (they move the whole image), "
            "while lazy modes move only the working set before ready, so the same registry serves "
            "far larger rollouts; background fetch still moves the rest afterwards and its traffic "
            "competes with other nodes' on-demand reads"
            + (
                f" (1000 nodes at once: p95 {at_1000['lazy']} s with background fetch, "
                f"{at_1000['lazy-nobg']} s without, {at_1000['full']} s for full pulls)."
                if all(m in at_1000 for m in ("lazy", "lazy-nobg", "full"))
                else "."
            )
        )
    return answer(
        "How many nodes can start at once per registry egress and RTT before the p95 time to ready "
        f"breaks an SLO ({SLO_S:g} s), per mode?",
        " ".join(parts) or "(no runs)",
        rows,
    )


def plot(runs: Sequence[RunData]) -> list[Plot]:
    cap = capacity(runs, SLO_S)
    fig = Figure(figsize=(9, 3.6))
    xs = [v * 8 / 1e9 for v in EGRESS.values()]
    for i, rtt in enumerate(RTTS_S):
        ax = fig.add_subplot(1, len(RTTS_S), i + 1)
        for mode in MODES:
            ys = [cap.get((eg, rtt, mode), (0, 0))[0] for eg in EGRESS]
            ax.plot(xs, [max(y, 1) for y in ys], marker="o", label=mode)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("registry egress (Gbit/s)")
        ax.set_title(f"RTT {rtt * 1e3:g} ms")
        if i == 0:
            ax.set_ylabel(f"largest rollout, p95 ready <= {SLO_S:g} s")
            ax.legend(fontsize=7)
    fig2 = Figure(figsize=(9, 3.6))
    for i, rtt in enumerate(RTTS_S):
        ax = fig2.add_subplot(1, len(RTTS_S), i + 1)
        for mode in MODES:
            sel = [
                r
                for r in runs
                if float(r.config["cluster"]["rtt_s"]) == rtt
                and value(r, "mode") == mode
                and _egress_name(r) == "10Gbit"
            ]
            pts = sorted(
                (int(n), est(g, "ready_s", "p95").mean) for (n,), g in groups(sel, "study.nodes").items()
            )
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=mode)
        ax.axhline(SLO_S, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes starting at once")
        ax.set_title(f"10 Gbit/s registry, RTT {rtt * 1e3:g} ms")
        if i == 0:
            ax.set_ylabel("p95 time to ready (s)")
            ax.legend(fontsize=7)
    return [
        Plot(
            name="frontier",
            figure=fig,
            caption=f"Largest rollout within p95 time to ready <= {SLO_S:g} s, per registry egress "
            f"(frontier; a point at {max(NODES)} means at least {max(NODES)}, the largest tested)",
        ),
        Plot(name="p95-vs-nodes", figure=fig2, caption="p95 time to ready against rollout size (10 Gbit/s)"),
    ]


EXPERIMENT = Experiment(
    name="study_2_registry_capacity",
    description="Study 2: registry capacity planning — rollout size vs registry egress and RTT -> "
    "p95 time to "
    "ready per mode; the largest rollout within an SLO (frontier).",
    run=run_study,
    effective=effective,
    base=BASE,
    factors={
        "registry.egress_bandwidth_bytes_per_s": list(EGRESS.values()),
        "cluster.rtt_s": RTTS_S,
        "mode": MODES,
        "study.nodes": NODES,
    },
    replications=2,
    tabulate=tabulate,
    plot=plot,
    quick_factors={
        "registry.egress_bandwidth_bytes_per_s": [1.25e9],
        "cluster.rtt_s": [0.002],
        "mode": ["full", "lazy"],
        "study.nodes": [10, 100],
    },
    quick_replications=1,
    code_packages=("sim", "startup", "imageformat"),
)
