"""Pure metrics over `StartupRecord` rows (definitions: docs/metrics.md).

Per run: percentiles of time-to-ready, bytes from the registry, failures. Across seeds: the
mean of a per-seed statistic with a two-sided 95% Student-t confidence interval (t quantiles
tabulated, so no scipy).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from startup.modes import PullMode
from startup.record import StartupRecord, percentile

# two-sided 95% Student-t quantiles t_{0.975, df}, df = 1..30; beyond: the normal 1.96
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: int) -> float:
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96


@dataclass(frozen=True, slots=True)
class MeanCI:
    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_ci(values: Iterable[float]) -> MeanCI:
    """Mean and 95% t-interval of the finite values (a single value: interval = NaN)."""
    xs = [v for v in values if not math.isnan(v)]
    n = len(xs)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    m = sum(xs) / n
    if n == 1:
        return MeanCI(m, math.nan, math.nan, 1)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    h = t975(n - 1) * sd / math.sqrt(n)
    return MeanCI(m, m - h, m + h, n)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run (one seed, one mode)."""

    mode: PullMode
    pods: int
    failed: int
    ttr_p50_s: float
    ttr_p95_s: float
    ttr_p99_s: float
    bytes_from_registry: int  # sum of StartupRecord.bytes_fetched


def time_to_ready(records: Sequence[StartupRecord]) -> list[float]:
    return [r.time_to_ready_s for r in records if r.ok]


def summarize_run(records: Sequence[StartupRecord], mode: PullMode) -> RunSummary:
    rows = [r for r in records if r.mode is mode]
    ttr = time_to_ready(rows)
    return RunSummary(
        mode=mode,
        pods=len(rows),
        failed=sum(1 for r in rows if not r.ok),
        ttr_p50_s=percentile(ttr, 50),
        ttr_p95_s=percentile(ttr, 95),
        ttr_p99_s=percentile(ttr, 99),
        bytes_from_registry=sum(r.bytes_fetched for r in rows),
    )


@dataclass(frozen=True, slots=True)
class ModeSummary:
    """A mode across seeds: each statistic's mean and 95% CI over the per-seed values."""

    mode: PullMode
    seeds: int
    ttr_p50_s: MeanCI
    ttr_p95_s: MeanCI
    ttr_p99_s: MeanCI
    bytes_from_registry: MeanCI
    failed: int


def summarize_seeds(runs: Sequence[RunSummary]) -> ModeSummary:
    if not runs:
        raise ValueError("summarize_seeds needs at least one run")
    return ModeSummary(
        mode=runs[0].mode,
        seeds=len(runs),
        ttr_p50_s=mean_ci(r.ttr_p50_s for r in runs),
        ttr_p95_s=mean_ci(r.ttr_p95_s for r in runs),
        ttr_p99_s=mean_ci(r.ttr_p99_s for r in runs),
        bytes_from_registry=mean_ci(float(r.bytes_from_registry) for r in runs),
        failed=sum(r.failed for r in runs),
    )
