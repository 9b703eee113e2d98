"""Ready-made summaries for `tabulate`: a metric per group of runs, mean ± CI across seeds.

Each run (one seed) is first reduced to one number per metric (the mean, or a percentile, over its
successful StartupRecords); the runs of a group are then combined into a mean with a Student-t
interval (stats.mean_ci), so the interval reflects seed-to-seed variation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from experiments.config import get_dotted
from experiments.errors import ConfigError
from experiments.framework import RunData, Table
from experiments.stats import Estimate, mean_ci
from startup.record import StartupRecord, percentile

METRICS: dict[str, Callable[[StartupRecord], float]] = {
    "pull_s": lambda r: r.pull_s,
    "create_s": lambda r: r.create_s,
    "run_s": lambda r: r.run_s,
    "time_to_ready_s": lambda r: r.time_to_ready_s,
    "bytes_fetched": lambda r: float(r.bytes_fetched),
    "bytes_foreground": lambda r: float(r.bytes_fetched - r.bytes_background),  # all but background fetch
    "requests": lambda r: float(r.requests),
    "fuse_cpu_s": lambda r: r.fuse_cpu_s,
}


def factor_value(run: RunData, key: str) -> Any:
    """A run's value for a factor key (declared factors first, else the effective config)."""
    if key in run.factors:
        return run.factors[key]
    try:
        return get_dotted(run.config, key)
    except ConfigError:
        return ""


def reduce_run(run: RunData, metric: str, stat: str = "mean") -> float:
    """One number per run: `stat` (mean | pNN, e.g. p95) of `metric` over its successful records."""
    if metric not in METRICS:
        raise ConfigError(f"metric (={metric!r}) must be one of {', '.join(METRICS)}")
    values = [METRICS[metric](r) for r in run.records if r.ok]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan
    if stat == "mean":
        return math.fsum(values) / len(values)
    if stat.startswith("p") and stat[1:].replace(".", "", 1).isdigit():
        return percentile(values, float(stat[1:]))
    raise ConfigError(f"stat (={stat!r}) must be 'mean' or a percentile like 'p95'")


def group_runs(runs: Sequence[RunData], by: Sequence[str]) -> dict[tuple[Any, ...], list[RunData]]:
    """Runs grouped by their values of the `by` keys, groups in first-appearance (plan) order."""
    groups: dict[tuple[Any, ...], list[RunData]] = {}
    for run in runs:
        groups.setdefault(tuple(factor_value(run, k) for k in by), []).append(run)
    return groups


def estimate(runs: Sequence[RunData], metric: str, stat: str = "mean") -> Estimate:
    return mean_ci([reduce_run(r, metric, stat) for r in runs])


def summary_table(
    runs: Sequence[RunData],
    *,
    title: str,
    by: Sequence[str],
    metrics: Sequence[str] = ("pull_s", "create_s", "time_to_ready_s", "bytes_fetched"),
    stat: str = "mean",
    note: str = "",
) -> Table:
    """One row per group: the `by` values, the seed count, then `stat` of each metric as mean ± CI."""
    rows = []
    for key, group in group_runs(runs, by).items():
        cells = [str(estimate(group, m, stat)) for m in metrics]
        rows.append((*key, len(group), *cells))
    columns = (*by, "seeds", *(f"{stat} {m}" for m in metrics))
    note = note or "Cells: mean ± half-width of the 95% Student-t interval across seeds."
    return Table(title=title, columns=tuple(columns), rows=tuple(rows), note=note)
