"""Study 1: startup gain against working set and image size; the regime of Slacker and of
stargz-snapshotter's benchmark; where lazy pulling loses (high access density: an LLM image).

Cases (factor `study.case`) x modes x seeds, one node, one pod:
- `syn-<size>-ws<pct>`: a synthetic one-layer image of 250 MB / 1 GB / 4 GB of files (compressed
  to 40%), over a 100 Mbit/s, 20 ms link; the startup reads a working set of 1%, 6.4% (Slacker),
  25% or 100% of the file bytes in 128 KiB sequential reads (uniform popularity, enough reads to
  cover the working set once on average); the application computes for 10 s in all, spread over
  its reads (Slacker's starts include the application's own start-up work);
- `real-*`: the real images (python: Debian's python3.11 + stdlib; debian: debootstrap + gcc) with
  their recorded startup traces, on the same link;
- `llm-rtt<ms>[-nobg]`: an "LLM image": 4 weight shards of 250 MB (compressed to 95%), the loader
  reads all of them (128 KiB reads, shards interleaved) at start; 1 Gbit/s link; background fetch
  on or off.
Modes (experiments/study_common.apply_variant): full, partial, lazy without prefetch, lazy with its
prefetch (the landmark, else the recorded list) beside the starting container (`lazy+prefetch`),
and lazy-prefetch (the start waits for that prefetch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from experiments.framework import Experiment, Plot, RunData, Table
from experiments.study_common import (
    answer,
    apply_case,
    cell,
    est,
    groups,
    metric_table,
    real_image,
    run_study,
    trace_workload,
    value,
)

MODES = ["full", "partial", "lazy", "lazy+prefetch", "lazy-prefetch"]  # study_common.apply_variant
SIZES = {"250MB": (250_000_000, 2500), "1GB": (1_000_000_000, 8000), "4GB": (4_000_000_000, 20000)}
WORKING_SETS = {"1": 0.01, "6.4": 0.064, "25": 0.25, "100": 1.0}
READ_BYTES = 131_072
LINK_SLOW = 12.5e6  # 100 Mbit/s
LINK_FAST = 125e6  # 1 Gbit/s
APP_COMPUTE_S = 10.0  # the application's own start-up compute, spread over its reads (synthetic cases)


def _synthetic(size: str, ws: str) -> dict[str, Any]:
    total, files = SIZES[size]
    frac = WORKING_SETS[ws]
    reads = max(1, math.ceil(frac * total / READ_BYTES))
    return {
        "images": [
            {
                "kind": "synthetic",
                "name": "app",
                "layers": [
                    {"name": f"app-{size}", "files": files, "total_bytes": total, "compression_ratio": 0.4}
                ],
            }
        ],
        "workload": {
            "kind": "synthetic",
            "reads": reads,
            "working_set_fraction": frac,
            "zipf_s": 0.0,
            "pattern": "sequential",
            "read_bytes": READ_BYTES,
            "think_s": APP_COMPUTE_S / reads,
        },
    }


def _llm(rtt_ms: int, background: bool) -> dict[str, Any]:
    total = 1_000_000_000
    return {
        "cluster.link_bandwidth_bytes_per_s": LINK_FAST,
        "cluster.rtt_s": rtt_ms / 1000,
        "pull.background_fetch": background,
        "images": [
            {
                "kind": "synthetic",
                "name": "llm",
                "layers": [
                    {
                        "name": "weights",
                        "files": 4,
                        "total_bytes": total,
                        "size_sigma": 0.0,
                        "compression_ratio": 0.95,
                    }
                ],
            }
        ],
        "workload": {
            "kind": "synthetic",
            "reads": math.ceil(total / READ_BYTES),
            "working_set_fraction": 1.0,
            "zipf_s": 0.0,
            "pattern": "sequential",
            "read_bytes": READ_BYTES,
            "think_s": 0.0001,
        },
    }


CASES: dict[str, dict[str, Any]] = {
    **{f"syn-{s}-ws{w}": _synthetic(s, w) for s in SIZES for w in WORKING_SETS},
    "real-python-import": {
        "images": [real_image("python")],
        "workload": trace_workload("python_import_json_ssl"),
    },
    "real-debian-gcc": {"images": [real_image("debian")], "workload": trace_workload("debian_gcc_compile")},
    "real-debian-sha256-cc1": {
        "images": [real_image("debian")],
        "workload": trace_workload("debian_read_large_file"),
    },
    **{f"llm-rtt{ms}{'' if bg else '-nobg'}": _llm(ms, bg) for ms in (5, 20) for bg in (True, False)},
}

BASE: dict[str, Any] = {
    "name": "study-1",
    "mode": "full",
    "cluster": {"nodes": 1, "link_bandwidth_bytes_per_s": LINK_SLOW, "rtt_s": 0.02},
    "images": [{"kind": "synthetic", "name": "placeholder", "layers": [{"name": "x"}]}],
    "arrivals": {"kind": "rollout", "replicas": 1},
    "study": {"case": "syn-250MB-ws1"},
}


def effective(config: dict[str, Any]) -> dict[str, Any]:
    return apply_case(config, CASES)


def _by_case(runs: Sequence[RunData]) -> dict[str, dict[str, list[RunData]]]:
    out: dict[str, dict[str, list[RunData]]] = {}
    for (case, mode), g in groups(runs, "study.case", "mode").items():
        out.setdefault(case, {})[mode] = g
    return out


def _ready(g: list[RunData] | None) -> float:
    return est(g, "ready_s").mean if g else math.nan


def tabulate(runs: Sequence[RunData]) -> list[Table]:
    by = _by_case(runs)
    cols = {
        "pull s": ("pull_s", "mean", 1.0),
        "create s": ("create_s", "mean", 1.0),
        "run s": ("run_s", "mean", 1.0),
        "ready s": ("ready_s", "mean", 1.0),
        "pull share": ("pull_share", "mean", 1.0),
        "MB before ready": ("bytes_before_ready", "mean", 1e6),
        "requests": ("requests", "mean", 1.0),
    }
    syn = [r for r in runs if str(value(r, "study.case")).startswith("syn-")]
    real = [r for r in runs if str(value(r, "study.case")).startswith("real-")]
    llm = [r for r in runs if str(value(r, "study.case")).startswith("llm-")]
    gain_rows = []
    for case, modes in by.items():
        full = _ready(modes.get("full"))
        gain_rows.append(
            (
                case,
                *(
                    f"{full / _ready(modes.get(m)):.2f}x" if m in modes else "n/a"
                    for m in ("partial", "lazy", "lazy+prefetch", "lazy-prefetch")
                ),
            )
        )
    tables = [_answer(by)]
    tables.append(
        Table(
            title="Speed-up of time to ready over a full pull (mean ready of full / mode)",
            columns=("case", "partial", "lazy", "lazy+prefetch", "lazy-prefetch"),
            rows=tuple(gain_rows),
            note="Below 1x: the mode is slower than pulling the whole image.",
        )
    )
    for title, part in (
        ("Synthetic images: size x working set (100 Mbit/s, 20 ms)", syn),
        ("Real images with recorded traces (100 Mbit/s, 20 ms)", real),
        ("LLM image: 1 GB of weights read at start (1 Gbit/s)", llm),
    ):
        if part:
            tables.append(metric_table(part, title=title, by=("study.case", "mode"), columns=cols))
    return tables


def _answer(by: dict[str, dict[str, list[RunData]]]) -> Table:
    rows: list[tuple[Any, ...]] = []
    parts = []
    slack = by.get("syn-1GB-ws6.4", {})
    if "full" in slack:
        share = est(slack["full"], "pull_share")
        rows.append(("1 GB image, 6.4% read: pull share of full start", cell(share)))
        ready_full, ready_lazy = est(slack["full"], "ready_s"), est(slack.get("lazy", []), "ready_s")
        ready_pf = est(slack.get("lazy-prefetch", []), "ready_s")
        ready_lp = est(slack.get("lazy+prefetch", []), "ready_s")
        rows += [
            (
                "  full / lazy / lazy+prefetch / lazy-prefetch ready (s)",
                f"{cell(ready_full)} / {cell(ready_lazy)} / {cell(ready_lp)} / {cell(ready_pf)}",
            )
        ]
        parts.append(
            f"Slacker's regime (pull = 76% of start, 6.4% of data read) appears with a 1 GB image (40% "
            f"compressed) over a 100 Mbit/s, 20 ms link and a start that reads 6.4% of the files: pull is "
            f"{share.mean:.0%} of a full start ({cell(ready_full)} s); lazy pulling starts in "
            f"{cell(ready_lazy)} s without prefetch, {cell(ready_lp)} s prefetching beside the start, "
            f"{cell(ready_pf)} s when the start waits for the prefetch."
        )
    pulls = [(size, by.get(f"syn-{size}-ws6.4", {}).get("lazy")) for size in SIZES]
    if all(g for _, g in pulls):
        flat = ", ".join(f"{size} {cell(est(g, 'pull_s'))} s" for size, g in pulls if g)
        fulls = ", ".join(
            f"{size} {cell(est(by[f'syn-{size}-ws6.4']['full'], 'pull_s'))} s" for size in SIZES
        )
        rows.append(("lazy 'pull' (TOC fetch) by image size", flat))
        parts.append(
            "As in stargz-snapshotter's benchmark, the lazy 'pull' (mounting: the TOCs) stays small "
            f"({flat}; full pulls: {fulls}), without prefetch the cost moves into the run phase, "
            "and prefetch wins most of it back (tables below)."
        )
    for case in ("real-python-import", "real-debian-gcc"):
        m = by.get(case, {})
        if all(k in m for k in ("full", "lazy", "lazy+prefetch", "lazy-prefetch")):
            f, lz, lp, pf = (est(m[k], "ready_s") for k in ("full", "lazy", "lazy+prefetch", "lazy-prefetch"))
            pull_l = est(m["lazy"], "pull_s")
            rows.append(
                (
                    f"{case}: ready full / lazy / lazy+prefetch / lazy-prefetch (s)",
                    f"{cell(f)} / {cell(lz)} / {cell(lp)} / {cell(pf)}",
                )
            )
            parts.append(
                f"{case}: {cell(f)} s full -> {cell(pf)} s with prefetch ({cell(lp)} s prefetching beside "
                f"the start, {cell(lz)} s without; lazy 'pull' = {cell(pull_l)} s)."
            )
    llm = []
    for rtt in (5, 20):
        m, nobg = by.get(f"llm-rtt{rtt}", {}), by.get(f"llm-rtt{rtt}-nobg", {})
        if "full" in m and "lazy" in nobg:
            f, lz, lzbg = (
                est(m["full"], "ready_s"),
                est(nobg["lazy"], "ready_s"),
                est(m.get("lazy", []), "ready_s"),
            )
            rows.append(
                (
                    f"LLM 1 GB, RTT {rtt} ms: full / lazy (no bg) / lazy (bg)",
                    f"{cell(f)} / {cell(lz)} / {cell(lzbg)}",
                )
            )
            llm.append(
                f"at RTT {rtt} ms {cell(f)} s full, {cell(lz)} s lazy without prefetch or background "
                f"fetch ({lz.mean / f.mean:.1f}x), {cell(lzbg)} s with background fetch"
            )
    if llm:
        parts.append(
            "Lazy pulling loses at high access density: the 1 GB LLM image whose start reads all its "
            "weights (128 KiB reads, each miss one synchronous round trip) takes "
            + "; ".join(llm)
            + " (issue #2172: 47 s -> 4 min 27 s, 5.7x)."
        )
        pf_runs = by.get("llm-rtt20", {}).get("lazy-prefetch")
        if pf_runs:
            parts.append(
                "Prefetching the whole working set first (lazy-prefetch) takes "
                f"{cell(est(pf_runs, 'ready_s'))} s "
                "at 20 ms: the weights still pass through the lazy store (decode and FUSE on every read)."
            )
    parts.append(_published(by))
    dense = by.get("syn-4GB-ws100", {})
    if "full" in dense and "lazy" in dense:
        parts.append(
            f"A synthetic 4 GB image read entirely: full {cell(est(dense['full'], 'ready_s'))} s, "
            f"lazy {cell(est(dense['lazy'], 'ready_s'))} s."
        )
    return answer(
        "How much faster do containers become ready with lazy pulling, as working set and image "
        "size vary, and where does it lose?",
        " ".join(parts) or "(no runs)",
        rows,
    )


PUBLISHED = {  # stargz-snapshotter's benchmark: (full, lazy with prefetch, lazy without prefetch) seconds
    "python": (37.1, 4.1, math.nan),
    "gcc": (43.8, 5.5, math.nan),
    "glassfish": (37.9, 14.6, 27.5),
}


def _published(by: dict[str, dict[str, list[RunData]]]) -> str:
    """Which synthetic (size, working set) cell gives each published speed-up with prefetch."""
    gains = {}
    for case, modes in by.items():
        if case.startswith("syn-") and all(m in modes for m in ("full", "lazy", "lazy-prefetch")):
            f = _ready(modes["full"])
            gains[case] = (f / _ready(modes["lazy-prefetch"]), f / _ready(modes["lazy"]))
    if not gains:
        return ""
    out = []
    for name, (full, pf, nopf) in PUBLISHED.items():
        target = full / pf
        case = min(gains, key=lambda c: abs(math.log(gains[c][0] / target)))
        extra = f", {full / nopf:.1f}x without prefetch" if nopf == nopf else ""
        out.append(
            f"{name} {target:.1f}x{extra} ~ {case} ({gains[case][0]:.1f}x with prefetch, "
            f"{gains[case][1]:.1f}x without)"
        )
    return (
        "The published speed-ups of stargz-snapshotter's benchmark sit in this grid (nearest cell by the "
        "gain with prefetch): " + "; ".join(out) + "."
    )


def plot(runs: Sequence[RunData]) -> list[Plot]:
    by = _by_case(runs)
    plots = []
    fig = Figure(figsize=(10, 3.6))
    for i, size in enumerate(SIZES):
        ax = fig.add_subplot(1, len(SIZES), i + 1)
        for mode in MODES:
            xs, ys = [], []
            for ws, frac in WORKING_SETS.items():
                g = by.get(f"syn-{size}-ws{ws}", {}).get(mode)
                if g:
                    xs.append(frac * 100)
                    ys.append(est(g, "ready_s").mean)
            if xs:
                ax.plot(xs, ys, marker="o", label=mode)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{size} image")
        ax.set_xlabel("working set (% of file bytes)")
        if i == 0:
            ax.set_ylabel("time to ready (s)")
            ax.legend(fontsize=7)
    plots.append(
        Plot(
            name="ready-vs-working-set",
            figure=fig,
            caption="Time to ready against working set, per image size and mode (100 Mbit/s, 20 ms)",
        )
    )
    cases = [c for c in by if not c.startswith("syn-")]
    if cases:
        fig2 = Figure(figsize=(10, 4))
        ax = fig2.add_subplot()
        labels: list[tuple[float, str]] = []
        x = 0.0
        for case in cases:
            for mode in MODES:
                g = by[case].get(mode)
                if not g:
                    continue
                bottom = 0.0
                for metric, color in (
                    ("pull_s", "tab:blue"),
                    ("create_s", "tab:orange"),
                    ("run_s", "tab:green"),
                ):
                    v = est(g, metric).mean
                    ax.bar(x, v, bottom=bottom, color=color, label=metric if not labels else None)
                    bottom += v
                labels.append((x, f"{case}\n{mode}"))
                x += 1
            x += 0.6
        ax.set_xticks([p for p, _ in labels], [lab for _, lab in labels], rotation=90, fontsize=6)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel("seconds (pull + create + run)")
        ax.legend()
        plots.append(
            Plot(
                name="phases",
                figure=fig2,
                caption="Where the time goes: pull, create (incl. prefetch), run, per case and mode",
            )
        )
    return plots


EXPERIMENT = Experiment(
    name="study_1_startup_gain",
    description=(
        "Study 1: startup gain vs working set and image size (Slacker's and stargz-snapshotter's regimes; "
        "where lazy loses)."
    ),
    run=run_study,
    effective=effective,
    base=BASE,
    factors={"study.case": list(CASES), "mode": MODES},
    replications=3,
    tabulate=tabulate,
    plot=plot,
    quick_factors={"study.case": ["syn-250MB-ws6.4", "real-python-import"], "mode": ["full", "lazy"]},
    quick_replications=1,
    code_packages=("sim", "startup", "imageformat"),
)
