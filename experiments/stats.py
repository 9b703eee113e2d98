"""Statistics across seeds: means with Student-t confidence intervals, and a seeded bootstrap.

No scipy: the t quantile comes from the regularized incomplete beta function (a continued
fraction evaluated with the modified Lentz method) inverted by bisection, which is exact to far
below the precision a handful of seeds can support.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                    -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and x in [0, 1]."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x (={x}) must be in [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df (={df}) must be > 0")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def welch_p(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test that `xs` and `ys` have equal means (NaN with fewer
    than 2 finite values on a side). Two constant samples: 0 if their means differ, else 1."""
    a = [float(v) for v in xs if math.isfinite(v)]
    b = [float(v) for v in ys if math.isfinite(v)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    ma, mb = math.fsum(a) / len(a), math.fsum(b) / len(b)
    va = math.fsum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)  # squared standard errors
    vb = math.fsum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    if va + vb == 0:
        return 0.0 if ma != mb else 1.0
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    return 2.0 * t_cdf(-abs(t), df)


def t_quantile(p: float, df: float) -> float:
    """The t value with P(T <= t) = p (bisection on t_cdf; |error| < 1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p (={p}) must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    while hi - lo > 1e-10 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True, kw_only=True, slots=True)
class Estimate:
    """A mean and its two-sided confidence interval across `n` independent replications."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "n/a"

        big = abs(self.mean) >= 1e5  # byte counts and the like: whole numbers with separators

        def num(x: float, digits: int) -> str:
            return f"{x:,.0f}" if big else f"{x:.{digits}g}"

        if self.n < 2 or math.isnan(self.half_width):
            return num(self.mean, 4)
        half = self.half_width
        if half <= 1e-9 * abs(self.mean):  # identical across seeds, up to rounding
            half = 0.0
        return f"{num(self.mean, 4)} ± {num(half, 2)}"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean of the finite values with a Student-t interval (NaN bounds when fewer than 2)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence (={confidence}) must be in (0, 1)")
    xs = [float(v) for v in values if math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return Estimate(mean=math.nan, low=math.nan, high=math.nan, n=0, confidence=confidence)
    mean = math.fsum(xs) / n
    if n == 1:
        return Estimate(mean=mean, low=math.nan, high=math.nan, n=1, confidence=confidence)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return Estimate(mean=mean, low=mean - half, high=mean + half, n=n, confidence=confidence)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,  # type: ignore[assignment]
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap interval of `statistic` (e.g. a p95) with a seeded generator."""
    xs = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if xs.size == 0:
        return Estimate(mean=math.nan, low=math.nan, high=math.nan, n=0, confidence=confidence)
    point = float(statistic(xs))
    if xs.size == 1:
        return Estimate(mean=point, low=math.nan, high=math.nan, n=1, confidence=confidence)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    idx = rng.integers(0, xs.size, size=(resamples, xs.size))
    stats = np.array([statistic(xs[row]) for row in idx])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Estimate(mean=point, low=float(low), high=float(high), n=int(xs.size), confidence=confidence)
