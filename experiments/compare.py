"""Prediction against measurement: the pure functions a validation experiment tabulates.

Runs of both engines sit in one experiment, told apart by an `engine` factor (or any key);
all other factor values name the scenario point. For each point and metric the prediction
(mean across the simulator's seeds) is compared with the measurement (mean across the
emulator's seeds): relative error = predicted / measured - 1.

- `point_errors`: one `PointError` per (point, metric);
- `error_summary`: per metric, the median and max |error| and the share within 10% / 25%;
- `ranking_agreement`: per point without the mode, do the engines order the modes alike?
  Pairs closer than `tie` (relative) in either engine are ties and cannot disagree; nor can a
  pair whose measured order its replicates do not resolve (Welch's t-test, p >= `alpha`: the
  emulator's own seeds then order it both ways often enough that its order is noise), which is
  reported as unresolved;
- `crossovers`: along a numeric factor, where does one mode overtake another, per engine
  (levels whose order the seeds do not resolve are skipped)?
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from experiments.framework import RunData, Table
from experiments.stats import mean_ci, welch_p
from experiments.tables import estimate, factor_value, group_runs, reduce_run

METRICS = ("pull_s", "create_s", "time_to_ready_s", "bytes_fetched")


@dataclass(frozen=True, kw_only=True, slots=True)
class PointError:
    point: tuple[Any, ...]  # values of the `by` keys
    metric: str
    predicted: float
    measured: float

    @property
    def error(self) -> float:
        """predicted / measured - 1 (NaN when either is missing or the measurement is 0)."""
        if math.isnan(self.predicted) or math.isnan(self.measured) or self.measured == 0:
            return math.nan
        return self.predicted / self.measured - 1.0


def _split(runs: Sequence[RunData], by: Sequence[str], engine_key: str
           ) -> dict[tuple[Any, ...], dict[str, list[RunData]]]:
    out: dict[tuple[Any, ...], dict[str, list[RunData]]] = {}
    for point, group in group_runs(runs, by).items():
        for (engine,), runs_of in group_runs(group, (engine_key,)).items():
            out.setdefault(point, {})[str(engine)] = runs_of
    return out


def point_errors(runs: Sequence[RunData], *, by: Sequence[str], metrics: Sequence[str] = METRICS,
                 stat: str = "mean", engine_key: str = "engine", predicted: str = "sim",
                 measured: str = "emulator") -> list[PointError]:
    """Prediction vs measurement per scenario point (`by` must not include `engine_key`)."""
    if engine_key in by:
        raise ValueError(f"by (={list(by)}) must not include the engine key {engine_key!r}")
    out = []
    for point, engines in _split(runs, by, engine_key).items():
        for m in metrics:
            p = estimate(engines.get(predicted, []), m, stat).mean
            q = estimate(engines.get(measured, []), m, stat).mean
            out.append(PointError(point=point, metric=m, predicted=p, measured=q))
    return out


def error_table(errors: Sequence[PointError], *, by: Sequence[str], title: str = "Prediction error") -> Table:
    rows = tuple((*e.point, e.metric, e.predicted, e.measured, e.error) for e in errors)
    return Table(title=title, columns=(*by, "metric", "predicted", "measured", "error"), rows=rows,
                 note="error = predicted / measured - 1 (means across seeds).")


def error_summary(errors: Sequence[PointError], *, title: str = "Prediction error by metric") -> Table:
    rows = []
    for metric in dict.fromkeys(e.metric for e in errors):
        errs = sorted(abs(e.error) for e in errors if e.metric == metric and not math.isnan(e.error))
        n = len(errs)
        median = (errs[n // 2] + errs[(n - 1) // 2]) / 2 if n else math.nan
        rows.append((metric, n, median, errs[-1] if n else math.nan,
                     sum(x <= 0.10 for x in errs) / n if n else math.nan,
                     sum(x <= 0.25 for x in errs) / n if n else math.nan))
    return Table(title=title, rows=tuple(rows),
                 columns=("metric", "points", "median |error|", "max |error|", "share ≤ 10%", "share ≤ 25%"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Ranking:
    point: tuple[Any, ...]
    predicted: tuple[str, ...]  # modes, fastest first
    measured: tuple[str, ...]
    disagreements: tuple[tuple[str, str], ...]  # pairs ordered oppositely beyond the tie tolerance
    # pairs ordered oppositely by the means whose measured order the replicates do not resolve,
    # with the test's p-value: not disagreements, but said
    unresolved: tuple[tuple[str, str, float], ...] = ()
    tie: float = 0.02
    alpha: float = 0.05

    @property
    def agree(self) -> bool:
        return not self.disagreements


def ranking_agreement(runs: Sequence[RunData], *, by: Sequence[str], mode_key: str = "mode",
                      metric: str = "time_to_ready_s", tie: float = 0.02, alpha: float = 0.05,
                      engine_key: str = "engine", predicted: str = "sim",
                      measured: str = "emulator") -> list[Ranking]:
    """Per point (`by` without the mode), the modes ranked by `metric` in each engine. A pair
    disagrees when both engines separate it by more than `tie` in opposite orders and the
    measured order is resolved: Welch's t-test across the measured seeds gives p < `alpha`
    (with a single measured seed per mode the means alone decide)."""
    out = []
    for point, engines in _split(runs, by, engine_key).items():
        per_run = {engine: {str(k[0]): [reduce_run(r, metric) for r in g]
                            for k, g in group_runs(engines.get(engine, []), (mode_key,)).items()}
                   for engine in (predicted, measured)}
        means = {engine: {mode: mean_ci(v).mean for mode, v in by_mode.items()}
                 for engine, by_mode in per_run.items()}
        values = per_run[measured]
        modes = sorted(set(means[predicted]) & set(means[measured]))
        bad, unresolved = [], []
        for a, b in itertools.combinations(modes, 2):
            dp = _rel_diff(means[predicted][a], means[predicted][b])
            dm = _rel_diff(means[measured][a], means[measured][b])
            if abs(dp) > tie and abs(dm) > tie and (dp > 0) != (dm > 0):
                p = welch_p(values[a], values[b])
                if p < alpha or math.isnan(p):
                    bad.append((a, b))
                else:
                    unresolved.append((a, b, p))
        out.append(Ranking(point=point, disagreements=tuple(bad), unresolved=tuple(unresolved),
                           tie=tie, alpha=alpha,
                           predicted=tuple(sorted(modes, key=lambda m: means[predicted][m])),
                           measured=tuple(sorted(modes, key=lambda m: means[measured][m]))))
    return out


def _rel_diff(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return (a - b) / scale if scale > 0 and not (math.isnan(a) or math.isnan(b)) else 0.0


def ranking_table(rankings: Sequence[Ranking], *, by: Sequence[str], title: str = "Mode ranking") -> Table:
    def verdict(r: Ranking) -> str:
        if not r.agree:
            return "no: " + ", ".join(f"{a}/{b}" for a, b in r.disagreements)
        if r.unresolved:
            return "yes; measured order not resolved: " + ", ".join(
                f"{a}/{b} (p = {p:.2f})" for a, b, p in r.unresolved)
        return "yes"

    rows = tuple((*r.point, " < ".join(r.predicted), " < ".join(r.measured), verdict(r)) for r in rankings)
    tie, alpha = (rankings[0].tie, rankings[0].alpha) if rankings else (0.02, 0.05)
    return Table(title=title, columns=(*by, "predicted (fastest first)", "measured", "agree"), rows=rows,
                 note=f"Orders by the means across seeds. Pairs within {tie:.0%} in either engine are "
                      "ties; a pair the engines order oppositely is a disagreement only when the measured "
                      f"seeds resolve its order (Welch's t-test, p < {alpha:g}); otherwise it is listed as "
                      "not resolved.")


def order_signs(runs: Sequence[RunData], *, along: str, modes: tuple[str, str], engine: str,
                metric: str = "time_to_ready_s", mode_key: str = "mode", engine_key: str = "engine",
                alpha: float = 0.05) -> list[tuple[float, int | None]]:
    """Per level of the numeric factor `along` (ascending), the sign of modes[0] - modes[1] in
    `engine` (its runs only; other factors should be fixed by the caller): -1, 0 or 1, or None
    where the seeds do not resolve the two modes' order (Welch's t-test, p >= `alpha`; with a
    single seed per mode the means decide)."""
    mine = [r for r in runs if str(factor_value(r, engine_key)) == engine]
    out: list[tuple[float, int | None]] = []
    for (x,), group in sorted(group_runs(mine, (along,)).items(), key=lambda kv: float(kv[0][0])):
        by_mode = {str(k[0]): [reduce_run(r, metric) for r in g]
                   for k, g in group_runs(group, (mode_key,)).items()}
        if modes[0] in by_mode and modes[1] in by_mode:
            a, b = by_mode[modes[0]], by_mode[modes[1]]
            d = mean_ci(a).mean - mean_ci(b).mean
            out.append((float(x), None if welch_p(a, b) >= alpha else (d > 0) - (d < 0)))
    return out


def crossovers(runs: Sequence[RunData], *, along: str, modes: tuple[str, str], engine: str,
               metric: str = "time_to_ready_s", mode_key: str = "mode", engine_key: str = "engine",
               alpha: float = 0.05) -> list[tuple[float, float]]:
    """Intervals (x_lo, x_hi) of `along` between which modes[0] - modes[1] changes sign in
    `engine` (`order_signs`); unresolved levels are skipped, so an interval may span them."""
    signs = [(x, s) for x, s in order_signs(runs, along=along, modes=modes, engine=engine, metric=metric,
                                             mode_key=mode_key, engine_key=engine_key, alpha=alpha)
             if s is not None]
    return [(x0, x1) for (x0, s0), (x1, s1) in itertools.pairwise(signs) if s0 and s1 and s0 != s1]
