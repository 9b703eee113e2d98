"""What the six studies (experiments/study_<n>_<name>.py) share: named cases, real images and
recorded traces in machine-independent configs, per-record metrics, and the answer table.

Cases. A study declares `CASES = {name: {dotted key: value}}` and a factor `study.case`; its
`effective` hook (`apply_case`) writes the case's overrides into the config before the engine's
defaults are filled in, so the effective config (and the run key) spells every value out.
`study.*` keys are bookkeeping for tables; `run_study` drops the table before the scenario is read.

Real images and recorded traces are named, not located, so a config means the same thing on
every machine (and in a Dask worker):
- `images.N.layout = "real:<recipe>[@<format>][+<trace>]"` -> `experiments.realimages.prepare_image`
  (built and cached on first use); `+<trace>` builds the image with the files the shipped trace
  reads first, followed by `.prefetch.landmark` (the "recorded list" of optimized eStargz);
- `workload.path = "trace:<name>"` -> `experiments/traces/<name>.jsonl`.
The images' bytes are not part of the run key (the recipes' inputs and the encoder's version
are in the image cache's key): rebuilding an image with a new encoder needs `rm -r results/<study>`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from experiments.config import Config, with_overrides
from experiments.engines import run_sim, sim_effective
from experiments.framework import Calibration, RunData, RunOutput, Table
from experiments.stats import Estimate, mean_ci
from experiments.tables import factor_value, group_runs
from startup.record import StartupRecord, percentile

REAL_PREFIX = "real:"
TRACE_PREFIX = "trace:"

RecordFn = Callable[[StartupRecord], float]


# -- configs ---------------------------------------------------------------------------------------
def apply_variant(config: Config) -> Config:
    """The studies' pull variants, named in `mode` (docs/studies.md):

    - `lazy`: lazy pulling without prefetch (`pull.prefetch.kind = "none"`): only on-demand reads and
      the background fetch — stargz-store on an image without a landmark or prioritized list;
    - `lazy+prefetch`: mode `lazy` with the scenario's prefetch (default: the landmark, else the
      recorded list) fetched beside the starting container (stargz-store's prefetch on mount);
    - `lazy-prefetch`: the container counts as created once that prefetch is local;
    - `full`, `partial`: unchanged.
    """
    mode = config.get("mode")
    if mode == "lazy+prefetch":
        return {**config, "mode": "lazy"}
    if mode == "lazy":
        return with_overrides(config, {"pull.prefetch": {"kind": "none"}})
    return config


def apply_case(config: Config, cases: Mapping[str, Mapping[str, Any]]) -> Config:
    """The config with `cases[config.study.case]` applied, the pull variant spelled out
    (`apply_variant`), engine defaults filled, `study` kept."""
    study = dict(config.get("study", {}))
    case = study.get("case")
    out = dict(config)
    if case is not None:
        if case not in cases:
            raise KeyError(f"study.case (={case!r}) must be one of {', '.join(cases)}")
        out = with_overrides(out, cases[case])
    # the variant is remembered, so applying the hook to an effective config changes nothing
    study["pull_variant"] = study.get("pull_variant", out.get("mode", "lazy"))
    out = apply_variant({**out, "mode": study["pull_variant"]})
    out.pop("study", None)
    eff = sim_effective(out)
    eff["study"] = study
    return eff


def parse_real(layout: str) -> tuple[str, str, str]:
    """`real:python@estargz+python_version` -> ("python", "estargz", "python_version")."""
    spec = layout[len(REAL_PREFIX) :]
    spec, _, trace = spec.partition("+")
    recipe, _, fmt = spec.partition("@")
    return recipe, fmt or "zstd:chunked", trace


def resolve_names(config: Config) -> Config:
    """Real image and shipped trace names replaced by paths on this machine."""
    from experiments.realimages import prepare_image
    from experiments.record_traces import load_shipped_trace, prefetch_paths, shipped_trace_path

    out = with_overrides(config, {})
    images = []
    for img in out.get("images", []):
        layout = img.get("layout", "")
        if img.get("kind") == "oci" and layout.startswith(REAL_PREFIX):
            recipe, fmt, trace = parse_real(layout)
            prio = prefetch_paths(load_shipped_trace(trace)) if trace else None
            img = {**img, "layout": str(prepare_image(recipe, fmt, prioritize=prio))}
        images.append(img)
    out["images"] = images
    wl = out.get("workload", {})
    if wl.get("kind") == "trace" and str(wl.get("path", "")).startswith(TRACE_PREFIX):
        out["workload"] = {**wl, "path": str(shipped_trace_path(wl["path"][len(TRACE_PREFIX) :]))}
    return out


def run_study(config: Config, seed: int, calibration: Calibration) -> RunOutput:
    """The simulator on the config minus its `study` table, names resolved (see module doc)."""
    scenario = {k: v for k, v in config.items() if k != "study"}
    return run_sim(resolve_names(scenario), seed, calibration)


def real_image(recipe: str, fmt: str = "", prio_trace: str = "") -> dict[str, Any]:
    layout = REAL_PREFIX + recipe + (f"@{fmt}" if fmt else "") + (f"+{prio_trace}" if prio_trace else "")
    return {"kind": "oci", "name": recipe, "layout": layout, "tag": recipe}


def trace_workload(name: str) -> dict[str, Any]:
    return {"kind": "trace", "path": TRACE_PREFIX + name}


# -- per-record metrics ------------------------------------------------------------------------------
def bytes_before_ready(r: StartupRecord) -> float:
    """Bytes the start itself needed: everything but the background fetch."""
    return float(r.bytes_manifest + r.bytes_toc + r.bytes_layers + r.bytes_on_demand + r.bytes_prefetch)


RECORD_METRICS: dict[str, RecordFn] = {
    "pull_s": lambda r: r.pull_s,
    "create_s": lambda r: r.create_s,
    "run_s": lambda r: r.run_s,
    "ready_s": lambda r: r.time_to_ready_s,
    "start_s": lambda r: r.created_s - r.submitted_s,  # kubelet_pod_start_duration_seconds
    "bytes_before_ready": bytes_before_ready,
    "bytes_fetched": lambda r: float(r.bytes_fetched),
    "bytes_on_demand": lambda r: float(r.bytes_on_demand),
    "bytes_background": lambda r: float(r.bytes_background),
    "requests": lambda r: float(r.requests),
    "cache_misses": lambda r: float(r.cache_misses),
    "fuse_cpu_s": lambda r: r.fuse_cpu_s,
    "pull_share": lambda r: r.pull_s / r.time_to_ready_s if r.time_to_ready_s > 0 else math.nan,
}


def run_value(
    run: RunData, fn: RecordFn, stat: str = "mean", where: Callable[[StartupRecord], bool] | None = None
) -> float:
    """One number per run: mean, sum, max or pNN of `fn` over its successful (selected) records."""
    vals = [fn(r) for r in run.records if r.ok and (where is None or where(r))]
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return math.nan
    if stat == "mean":
        return math.fsum(vals) / len(vals)
    if stat == "sum":
        return math.fsum(vals)
    if stat == "max":
        return max(vals)
    if stat.startswith("p"):
        return percentile(vals, float(stat[1:]))
    raise ValueError(f"stat (={stat!r}) must be mean, sum, max or pNN")


def est(
    runs: Sequence[RunData],
    metric: str | RecordFn,
    stat: str = "mean",
    where: Callable[[StartupRecord], bool] | None = None,
) -> Estimate:
    """Mean ± 95% t-interval across the runs (seeds) of the per-run value."""
    fn = RECORD_METRICS[metric] if isinstance(metric, str) else metric
    return mean_ci([run_value(r, fn, stat, where) for r in runs])


def cell(e: Estimate, scale: float = 1.0, digits: int = 3) -> str:
    """`12.3 ± 0.4` (scaled; no interval with one seed, or when it is below 0.1% of the mean)."""
    if math.isnan(e.mean):
        return "n/a"
    m = e.mean / scale
    if e.n < 2 or math.isnan(e.half_width) or e.half_width <= 1e-3 * abs(e.mean):
        return f"{m:.{digits}g}"
    return f"{m:.{digits}g} ± {e.half_width / scale:.2g}"


def groups(runs: Sequence[RunData], *keys: str) -> dict[tuple[Any, ...], list[RunData]]:
    return group_runs(runs, keys)


def value(run: RunData, key: str) -> Any:
    return factor_value(run, key)


def metric_table(
    runs: Sequence[RunData],
    *,
    title: str,
    by: Sequence[str],
    columns: Mapping[str, tuple[str | RecordFn, str, float]],
    note: str = "",
) -> Table:
    """One row per group of `by`: seeds, then per column (metric, stat, scale) mean ± CI."""
    rows = []
    for key, group in group_runs(runs, by).items():
        rows.append((*key, len(group), *(cell(est(group, m, s), scale) for m, s, scale in columns.values())))
    return Table(
        title=title,
        columns=(*by, "seeds", *columns),
        rows=tuple(rows),
        note=note
        or "Cells: mean ± half-width of the 95% Student-t interval across seeds "
        "(no interval: one seed, or an interval below 0.1% of the mean).",
    )


def answer(
    question: str,
    answer_text: str,
    rows: Sequence[tuple[Any, ...]] = (),
    columns: tuple[str, ...] = ("figure", "value"),
) -> Table:
    """The report's headline: the question and the answer (with numbers) as the first table."""
    return Table(
        title="Question and answer",
        columns=columns,
        rows=tuple(rows) or (("", ""),),
        note=f"**Q:** {question}\n\n**A:** {answer_text}",
    )


def synthetic_1gb_ws5() -> dict[str, Any]:
    """A 1 GB synthetic image (40% compressed) whose start reads 5% of it in 128 KiB reads (studies 4, 5)."""
    return {
        "images": [
            {
                "kind": "synthetic",
                "name": "app",
                "layers": [
                    {"name": "app-1GB", "files": 8000, "total_bytes": 1_000_000_000, "compression_ratio": 0.4}
                ],
            }
        ],
        "workload": {
            "kind": "synthetic",
            "reads": 382,
            "working_set_fraction": 0.05,
            "zipf_s": 0.0,
            "read_bytes": 131_072,
            "think_s": 0.001,
        },
    }
