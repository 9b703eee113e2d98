"""startup.metrics: percentiles per run, Student-t intervals across seeds."""

from __future__ import annotations

import math

import pytest

from startup.metrics import mean_ci, summarize_run, summarize_seeds, t975
from startup.modes import PullMode
from startup.record import StartupRecord


def rec(pod: str, ready: float, error: str = "", mode: PullMode = PullMode.LAZY) -> StartupRecord:
    return StartupRecord(
        engine="sim",
        scenario="s",
        seed=0,
        node="n",
        pod=pod,
        image="i",
        mode=mode,
        submitted_s=1.0,
        pulled_s=1.5,
        created_s=2.0,
        ready_s=ready,
        bytes_toc=10,
        bytes_on_demand=5,
        error=error,
    )


def test_mean_ci_matches_the_t_formula() -> None:
    ci = mean_ci([1.0, 2.0, 3.0, 4.0])
    sd = math.sqrt(sum((x - 2.5) ** 2 for x in (1, 2, 3, 4)) / 3)
    assert ci.mean == 2.5 and ci.n == 4
    assert ci.half_width == pytest.approx(3.182 * sd / 2)
    single = mean_ci([5.0])
    assert single.mean == 5.0 and math.isnan(single.low)
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([float("nan")]).mean)
    assert t975(1) == 12.706 and t975(1000) == 1.96 and math.isnan(t975(0))


def test_run_and_seed_summaries() -> None:
    rows = [rec(f"p{i}", 1.0 + i) for i in range(1, 11)] + [rec("bad", float("nan"), error="429")]
    rows.append(rec("other", 3.0, mode=PullMode.FULL))
    s = summarize_run(rows, PullMode.LAZY)
    assert s.pods == 11 and s.failed == 1
    assert s.ttr_p50_s == pytest.approx(5.5) and s.ttr_p99_s == pytest.approx(9.91)
    assert s.bytes_from_registry == 11 * 15
    seeds = summarize_seeds([s, s])
    assert seeds.seeds == 2 and seeds.ttr_p50_s.mean == pytest.approx(5.5) and seeds.ttr_p50_s.half_width == 0
    with pytest.raises(ValueError):
        summarize_seeds([])
