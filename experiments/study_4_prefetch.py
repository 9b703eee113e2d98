"""Study 4: prefetch and background-fetch what-ifs — prefetch none / landmark / recorded list /
first bytes; background fetch off or with 1..8 workers; fetch granularity (TOC chunks against
stargz-store's 50,000-byte blocks).

All runs are `lazy-prefetch` starts on one node (100 Mbit/s, 20 ms), one pod. Images:
- `python`: the real python image with the `import json, ssl` trace; for `landmark` it is built
  with the files that trace reads first, then `.prefetch.landmark` (optimized eStargz's layout;
  here as zstd:chunked, whose TOC carries the landmark the same way);
- `debian-gcc`: the real debian image with the gcc compile trace (same for `landmark`);
- `syn-1GB-ws5`: a synthetic 1 GB image (no landmark: `landmark` falls back to the trace's list,
  as stargz-store does with a prioritized list) whose start reads 5% in 128 KiB reads.
Prefetch kinds (startup.scenario): `none`; `landmark` (the blob range before the landmark, one
request); `trace` (the fetch units the recorded trace reads: a recorded prioritized list);
`first-bytes` (the first 10 MB of the blob, stargz-store's `prefetch_size`).
"Last byte fetched at" is the time the registry's egress to the node ends (with background fetch on,
the whole image is local then).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from experiments.framework import Experiment, Plot, RunData, Table
from experiments.stats import mean_ci
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

PREFETCH = ["none", "landmark", "trace", "first-bytes"]
BACKGROUND = [0, 1, 2, 4, 8]  # 0 = background fetch off
GRANULARITY = ["block", "chunk"]

TRACES = {"python": "python_import_json_ssl", "debian-gcc": "debian_gcc_compile"}
SYNTHETIC = synthetic_1gb_ws5()
IMAGES = ["python", "debian-gcc", "syn-1GB-ws5"]

BASE: dict[str, Any] = {
    "name": "study-4",
    "mode": "lazy-prefetch",
    "cluster": {"nodes": 1, "link_bandwidth_bytes_per_s": 12.5e6, "rtt_s": 0.02},
    "images": [{"kind": "synthetic", "name": "placeholder", "layers": [{"name": "x"}]}],
    "arrivals": {"kind": "rollout", "replicas": 1},
    "sim": {"egress_sample_s": 0.1},
    "study": {"image": "python", "prefetch": "none", "background": 2},
}


def effective(config: dict[str, Any]) -> dict[str, Any]:
    study = config.get("study", {})
    image, prefetch, bg = (
        study.get("image", "python"),
        study.get("prefetch", "none"),
        int(study.get("background", 2)),
    )
    if image in TRACES:
        recipe = "python" if image == "python" else "debian"
        case: dict[str, Any] = {
            "images": [real_image(recipe, prio_trace=TRACES[image] if prefetch == "landmark" else "")],
            "workload": trace_workload(TRACES[image]),
        }
    else:
        case = dict(SYNTHETIC)
    pf: dict[str, Any] = {"kind": prefetch}
    if prefetch == "landmark":
        pf["fallback_to_trace"] = True
    if prefetch == "first-bytes":
        pf["bytes"] = 10_000_000
    case["pull.prefetch"] = pf
    case["pull.background_fetch"] = bg > 0
    case["pull.background_concurrency"] = max(bg, 1)
    return apply_case({**config, "study": {**study, "case": "x"}}, {"x": case})


def local_at_s(run: RunData) -> float:
    """When the registry's egress to the node ended (the node holds everything it will fetch)."""
    rows = [r for r in run.tables.get("egress", ()) if float(r["bytes_per_s"]) > 0]
    step = float(run.config["sim"]["egress_sample_s"])
    return max((float(r["t_s"]) for r in rows), default=float("nan")) + step


def tabulate(runs: Sequence[RunData]) -> list[Table]:
    cols: dict[str, tuple[str | RecordFn, str, float]] = {
        "ready s": ("ready_s", "mean", 1.0),
        "create s (incl. prefetch)": ("create_s", "mean", 1.0),
        "run s": ("run_s", "mean", 1.0),
        "MB prefetch": (lambda r: float(r.bytes_prefetch), "mean", 1e6),
        "MB on demand": ("bytes_on_demand", "mean", 1e6),
        "MB before ready": ("bytes_before_ready", "mean", 1e6),
        "cache misses": ("cache_misses", "mean", 1.0),
        "requests": ("requests", "mean", 1.0),
    }
    default_bg = [r for r in runs if r.config["study"]["background"] == 2]
    pf = metric_table(
        default_bg,
        title="Prefetch kind x granularity (background fetch: 2 workers, the default)",
        by=("study.image", "study.prefetch", "pull.lazy_granularity"),
        columns=cols,
    )
    rows = []
    for (image, bg, gran), g in groups(
        runs, "study.image", "study.background", "pull.lazy_granularity"
    ).items():
        sel = [r for r in g if r.config["study"]["prefetch"] == "none"]
        if not sel:
            continue
        rows.append(
            (
                image,
                bg or "off",
                gran,
                cell(est(sel, "ready_s")),
                cell(mean_ci([local_at_s(r) for r in sel])),
                cell(est(sel, "bytes_on_demand"), 1e6),
                cell(est(sel, "bytes_fetched"), 1e6),
            )
        )
    bg = Table(
        title="Background fetch concurrency (no prefetch)",
        columns=(
            "image",
            "workers",
            "granularity",
            "ready s",
            "last byte fetched at s",
            "MB on demand",
            "MB fetched in all",
        ),
        rows=tuple(rows),
        note="workers 'off': background fetch disabled (only what the start reads is ever fetched).",
    )
    return [_answer(runs), pf, bg]


def _local(rs: list[RunData]) -> str:
    return cell(mean_ci([local_at_s(r) for r in rs]))


def _answer(runs: Sequence[RunData]) -> Table:
    rows, parts = [], []
    g = groups(runs, "study.image", "study.prefetch", "study.background", "pull.lazy_granularity")
    for image in IMAGES:
        e = {p: g.get((image, p, 2, "block")) for p in PREFETCH}
        if not all(e.values()):
            continue
        ready = {p: est(rs, "ready_s") for p, rs in e.items() if rs}
        rows.append(
            (
                f"{image}: ready with prefetch none / landmark / trace / first-bytes (s)",
                " / ".join(cell(ready[p]) for p in PREFETCH),
            )
        )
        text = (
            f"{image}: {cell(ready['none'])} s without prefetch, {cell(ready['landmark'])} s with the "
            f"landmark, {cell(ready['trace'])} s with the recorded list, {cell(ready['first-bytes'])} s with "
            "the first 10 MB"
        )
        bgs = {b: g.get((image, "none", b, "block")) for b in BACKGROUND}
        if all(bgs.values()):
            bg_ready = " / ".join(cell(est(rs, "ready_s")) for rs in bgs.values() if rs)
            bg_local = " / ".join(_local(rs) for rs in bgs.values() if rs)
            rows.append((f"{image}: ready with background off / 1 / 2 / 4 / 8 workers (s)", bg_ready))
            rows.append(
                (f"{image}: last byte fetched at, background off / 1 / 2 / 4 / 8 workers (s)", bg_local)
            )
            text += (
                f"; background off/1/2/4/8 workers: ready {bg_ready} s, last byte fetched at {bg_local} s "
                "(with background fetch on, the whole image is local then)"
            )
        ch, bl = g.get((image, "none", 0, "chunk")), g.get((image, "none", 0, "block"))
        if ch and bl:
            cmp = (
                f"ready {cell(est(ch, 'ready_s'))} vs {cell(est(bl, 'ready_s'))} s, "
                f"{cell(est(ch, 'bytes_on_demand'), 1e6)} vs {cell(est(bl, 'bytes_on_demand'), 1e6)} MB "
                "on demand, "
                f"{cell(est(ch, 'cache_misses'))} vs {cell(est(bl, 'cache_misses'))} misses"
            )
            rows.append((f"{image}, no prefetch, no background: TOC chunks vs 50,000-byte blocks", cmp))
            text += f"; TOC chunks vs blocks (no prefetch, no background): {cmp}"
        parts.append(text)
    text = (
        "Prefetch moves the start's reads before `created`, in a few large requests instead of one round "
        "trip per miss. "
        + ". ".join(parts)
        + ". The first 10 MB of the blob helps only as far as the start's files happen to lie there. "
        "Background fetch makes the whole image local (its concurrency sets when), and it also fills the "
        "cache ahead of the start's reads; but a background request in flight is not interrupted by an "
        "on-demand read, so many workers on a slow link can delay the start (docs/model.md). TOC chunks "
        "fetch fewer bytes than 50,000-byte blocks, but in smaller units: more misses, each a round trip."
        if parts
        else "(no runs)"
    )
    return answer(
        "What do prefetch (none / landmark / recorded list), background-fetch concurrency and fetch "
        "granularity change for the start?",
        text,
        rows,
    )


def plot(runs: Sequence[RunData]) -> list[Plot]:
    fig = Figure(figsize=(11, 3.6))
    g = groups(runs, "study.image", "study.prefetch", "study.background", "pull.lazy_granularity")
    for i, image in enumerate(IMAGES):
        ax = fig.add_subplot(1, len(IMAGES), i + 1)
        width = 0.4
        for j, gran in enumerate(GRANULARITY):
            ys = [
                est(g[(image, p, 2, gran)], "ready_s").mean if (image, p, 2, gran) in g else 0.0
                for p in PREFETCH
            ]
            ax.bar([k + j * width for k in range(len(PREFETCH))], ys, width=width, label=gran)
        ax.set_xticks([k + width / 2 for k in range(len(PREFETCH))], PREFETCH, fontsize=7)
        ax.set_title(image)
        if i == 0:
            ax.set_ylabel("time to ready (s)")
            ax.legend(fontsize=7, title="granularity")
    return [
        Plot(
            name="prefetch",
            figure=fig,
            caption="Time to ready per prefetch kind and fetch granularity "
            "(100 Mbit/s, 20 ms; 2 background workers)",
        )
    ]


EXPERIMENT = Experiment(
    name="study_4_prefetch",
    description="Study 4: prefetch (none / landmark / recorded list / first bytes), "
    "background-fetch concurrency "
    "and fetch granularity (TOC chunks vs 50,000-byte blocks).",
    run=run_study,
    effective=effective,
    base=BASE,
    factors={
        "study.image": IMAGES,
        "study.prefetch": PREFETCH,
        "study.background": BACKGROUND,
        "pull.lazy_granularity": GRANULARITY,
    },
    replications=3,
    tabulate=tabulate,
    plot=plot,
    quick_factors={
        "study.image": ["python"],
        "study.prefetch": ["none", "trace"],
        "study.background": [2],
        "pull.lazy_granularity": ["block"],
    },
    quick_replications=1,
    code_packages=("sim", "startup", "imageformat"),
)
