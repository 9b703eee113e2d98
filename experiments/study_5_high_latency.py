"""Study 5: high-latency links — lazy gains as RTT grows, and where synchronous on-demand fetches
become RTT-bound.

One node, a 100 Mbit/s or 1 Gbit/s link, RTT from 0.5 ms to 200 ms, the four modes, three workloads: the real
python image with its recorded `import json, ssl` trace, the real debian image with its recorded
gcc compile, and a synthetic 1 GB image (40% compressed) whose start reads 5% in 128 KiB reads.
A read that misses the lazy cache waits for its fetch (one request, >= 1 RTT); the trace is
replayed in order, so misses are serial: `cache misses x RTT` is the RTT-bound part of the run.

Not modelled (docs/model.md): TCP slow start and window limits, which make a full pull of a large
blob slower on high-RTT links than `RTT + size / bandwidth` — the full-pull figures here are
optimistic at high RTT, so lazy's real advantage there is larger, not smaller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from experiments.framework import Experiment, Plot, RunData, Table
from experiments.study_common import (
    RecordFn,
    answer,
    apply_case,
    cell,
    est,
    groups,
    metric_table,
    real_image,
    run_study,
    synthetic_1gb_ws5,
    trace_workload,
)

MODES = ["full", "partial", "lazy", "lazy-prefetch"]
RTTS_S = [0.0005, 0.002, 0.01, 0.025, 0.05, 0.1, 0.2]
LINKS = {"100Mbit": 12.5e6, "1Gbit": 125e6}

CASES: dict[str, dict[str, Any]] = {
    "python-import": {"images": [real_image("python")], "workload": trace_workload("python_import_json_ssl")},
    "debian-gcc": {"images": [real_image("debian")], "workload": trace_workload("debian_gcc_compile")},
    "syn-1GB-ws5": synthetic_1gb_ws5(),
}

BASE: dict[str, Any] = {
    "name": "study-5",
    "mode": "full",
    "cluster": {"nodes": 1, "link_bandwidth_bytes_per_s": 125e6, "rtt_s": 0.001},
    "images": [{"kind": "synthetic", "name": "placeholder", "layers": [{"name": "x"}]}],
    "arrivals": {"kind": "rollout", "replicas": 1},
    "study": {"case": "python-import", "link": "1Gbit"},
}


def effective(config: dict[str, Any]) -> dict[str, Any]:
    """`study.link` names the node link: 100Mbit or 1Gbit."""
    link = config.get("study", {}).get("link", "1Gbit")
    out = {**config, "cluster": {**config["cluster"], "link_bandwidth_bytes_per_s": LINKS[link]}}
    return apply_case(out, CASES)


def _rtt_bound_share(runs: Sequence[RunData]) -> float:
    """Mean over runs of (cache misses x RTT) / run phase."""
    vals = []
    for r in runs:
        rtt = float(r.config["cluster"]["rtt_s"])
        for rec in r.records:
            if rec.ok and rec.run_s > 0:
                vals.append(rec.cache_misses * rtt / rec.run_s)
    return sum(vals) / len(vals) if vals else float("nan")


def crossover_rtt(runs: Sequence[RunData], case: str, link: str, mode: str) -> float | None:
    """The smallest RTT (s) of the sweep at which `mode` is slower than full (None: never)."""
    sel = [r for r in runs if r.config["study"]["case"] == case and r.config["study"]["link"] == link]
    g = groups(sel, "cluster.rtt_s", "mode")
    for rtt in RTTS_S:
        f, m = g.get((rtt, "full")), g.get((rtt, mode))
        if f and m and est(m, "ready_s").mean > est(f, "ready_s").mean:
            return rtt
    return None


def tabulate(runs: Sequence[RunData]) -> list[Table]:
    rows = []
    for (case, link, rtt), g in groups(runs, "study.case", "study.link", "cluster.rtt_s").items():
        by_mode = {m: [r for r in g if r.config["mode"] == m] for m in MODES}
        full = est(by_mode["full"], "ready_s").mean if by_mode["full"] else float("nan")
        lazy = by_mode["lazy"]
        rows.append(
            (
                case,
                link,
                f"{float(rtt) * 1e3:g}",
                *(cell(est(by_mode[m], "ready_s")) if by_mode[m] else "n/a" for m in MODES),
                *(
                    f"{full / est(by_mode[m], 'ready_s').mean:.2f}x" if by_mode[m] else "n/a"
                    for m in ("lazy", "lazy-prefetch")
                ),
                f"{_rtt_bound_share(lazy):.0%}" if lazy else "n/a",
            )
        )
    ready = Table(
        title="Time to ready (s) per RTT and mode; gain over full; RTT-bound share of the lazy run",
        columns=("case", "link", "RTT ms", *MODES, "full/lazy", "full/lazy-prefetch", "lazy run RTT-bound"),
        rows=tuple(rows),
        note="RTT-bound share: cache misses x RTT / run phase of the lazy start (each miss waits >= 1 RTT). "
        "Cells: mean ± 95% t-interval across seeds.",
    )
    cols: dict[str, tuple[str | RecordFn, str, float]] = {
        "pull s": ("pull_s", "mean", 1.0),
        "create s": ("create_s", "mean", 1.0),
        "run s": ("run_s", "mean", 1.0),
        "ready s": ("ready_s", "mean", 1.0),
        "cache misses": ("cache_misses", "mean", 1.0),
        "requests": ("requests", "mean", 1.0),
        "MB before ready": ("bytes_before_ready", "mean", 1e6),
    }
    detail = metric_table(
        runs,
        title="Phases, misses and requests",
        by=("study.case", "study.link", "cluster.rtt_s", "mode"),
        columns=cols,
    )
    return [_answer(runs), ready, detail]


def _answer(runs: Sequence[RunData]) -> Table:
    rows, parts = [], []
    g = groups(runs, "study.case", "study.link", "cluster.rtt_s", "mode")
    for case in CASES:
        for link in LINKS:
            cells = []
            for rtt in (RTTS_S[0], 0.05, RTTS_S[-1]):
                rf, rl, rp = (g.get((case, link, rtt, m)) for m in ("full", "lazy", "lazy-prefetch"))
                if rf and rl and rp:
                    cells.append((rtt, est(rf, "ready_s"), est(rl, "ready_s"), est(rp, "ready_s")))
            if not cells:
                continue
            for rtt, f, lz, pf in cells:
                rows.append(
                    (
                        f"{case}, {link} @ {rtt * 1e3:g} ms: full / lazy / lazy-prefetch ready (s)",
                        f"{cell(f)} / {cell(lz)} / {cell(pf)}",
                    )
                )
            x = crossover_rtt(runs, case, link, "lazy")
            xp = crossover_rtt(runs, case, link, "lazy-prefetch")
            lz_runs = g.get((case, link, 0.05, "lazy"), [])
            share = _rtt_bound_share(lz_runs) if lz_runs else float("nan")
            (lo, f0, l0, p0), (hi, f1, l1, p1) = cells[0], cells[-1]
            parts.append(
                f"{case} over {link}: lazy's gain over full goes from {f0.mean / l0.mean:.1f}x at "
                f"{lo * 1e3:g} ms to {f1.mean / l1.mean:.1f}x at {hi * 1e3:g} ms "
                f"(with prefetch {f0.mean / p0.mean:.1f}x -> {f1.mean / p1.mean:.1f}x); "
                + (f"lazy loses to full from {x * 1e3:g} ms" if x else "lazy stays ahead over the sweep")
                + (f", lazy-prefetch from {xp * 1e3:g} ms" if xp else ", lazy-prefetch stays ahead")
                + (
                    f"; at 50 ms {share:.0%} of the lazy run phase is serial round trips"
                    if share == share
                    else ""
                )
            )
    text = (
        ". ".join(parts)
        + ". Each read that misses waits for its own round trip, so the lazy run phase grows "
        "linearly with RTT (cache misses x RTT) while a full pull pays a handful of round trips; prefetch "
        "turns the misses into a few large requests and keeps most of the gain. Full pulls here have no TCP "
        "slow start or window limit (not modelled), so at high RTT they are optimistic: the real crossover "
        "lies at a higher RTT."
        if parts
        else "(no runs)"
    )
    return answer(
        "How do lazy pulling's gains change as the RTT to the registry grows, and when do the "
        "synchronous on-demand fetches become RTT-bound?",
        text,
        rows,
    )


def plot(runs: Sequence[RunData]) -> list[Plot]:
    fig = Figure(figsize=(11, 6.4))
    g = groups(runs, "study.case", "study.link", "cluster.rtt_s", "mode")
    links = [lk for lk in LINKS if any(k[1] == lk for k in g)]
    cases = [c for c in CASES if any(k[0] == c for k in g)]
    for j, link in enumerate(links):
        for i, case in enumerate(cases):
            ax = fig.add_subplot(len(links), len(cases), j * len(cases) + i + 1)
            for mode in MODES:
                pts = sorted(
                    (float(rtt) * 1e3, est(rs, "ready_s").mean)
                    for (c, lk, rtt, m), rs in g.items()
                    if c == case and lk == link and m == mode
                )
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=mode)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{case}, {link}", fontsize=9)
            if j == len(links) - 1:
                ax.set_xlabel("RTT (ms)")
            if i == 0:
                ax.set_ylabel("time to ready (s)")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    return [
        Plot(name="ready-vs-rtt", figure=fig, caption="Time to ready against RTT, per link speed and mode")
    ]


EXPERIMENT = Experiment(
    name="study_5_high_latency",
    description="Study 5: high-latency links — lazy gains as RTT grows (where on-demand fetches "
    "become RTT-bound).",
    run=run_study,
    effective=effective,
    base=BASE,
    factors={"study.case": list(CASES), "study.link": list(LINKS), "cluster.rtt_s": RTTS_S, "mode": MODES},
    replications=2,
    tabulate=tabulate,
    plot=plot,
    quick_factors={"study.case": ["python-import"], "cluster.rtt_s": [0.002, 0.1], "mode": ["full", "lazy"]},
    quick_replications=1,
    code_packages=("sim", "startup", "imageformat"),
)
