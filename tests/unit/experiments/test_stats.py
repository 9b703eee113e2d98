"""Confidence intervals: the t quantile against published table values, coverage, the bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.stats import betainc, bootstrap_ci, mean_ci, t_cdf, t_quantile, welch_p


@pytest.mark.parametrize(
    ("df", "q975"),
    [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (10, 2.2281), (30, 2.0423), (1000, 1.9623)],
)
def test_t_quantile_matches_tables(df, q975):
    assert t_quantile(0.975, df) == pytest.approx(q975, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-q975, abs=1e-4)
    assert t_cdf(q975, df) == pytest.approx(0.975, abs=1e-5)


def test_betainc_closed_forms():
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)
    assert betainc(2, 1, 0.5) == pytest.approx(0.25)
    assert betainc(0.5, 0.5, 0.5) == pytest.approx(0.5)


def test_mean_ci_interval_and_degenerate_cases():
    e = mean_ci([1.0, 2.0, 3.0])
    assert e.mean == 2.0 and e.n == 3
    assert e.half_width == pytest.approx(4.3027 * 1.0 / math.sqrt(3), rel=1e-4)
    assert math.isnan(mean_ci([5.0]).low) and mean_ci([5.0]).mean == 5.0
    assert math.isnan(mean_ci([]).mean)
    assert mean_ci([1.0, float("nan"), 3.0]).n == 2


def test_mean_ci_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(np.random.SeedSequence(1))
    hits = sum(1 for _ in range(400) if (e := mean_ci(rng.normal(10.0, 2.0, size=5))).low <= 10.0 <= e.high)
    assert 0.91 <= hits / 400 <= 0.99


def test_bootstrap_is_seeded_and_brackets_the_statistic():
    xs = list(np.random.default_rng(2).exponential(1.0, size=50))
    a = bootstrap_ci(xs, lambda v: float(np.percentile(v, 95)), seed=3)
    b = bootstrap_ci(xs, lambda v: float(np.percentile(v, 95)), seed=3)
    assert a == b
    assert a.low <= a.mean <= a.high


def test_estimate_text():
    assert str(mean_ci([1.0, 1.0 + 1e-17, 1.0])) == "1 ± 0"
    assert str(mean_ci([2e6, 2e6])) == "2,000,000 ± 0"
    assert str(mean_ci([1.0])) == "1"
    assert str(mean_ci([])) == "n/a"
    assert str(mean_ci([1.0, 2.0, 3.0])) == "2 ± 2.5"


def test_big_means_print_whole_numbers_with_separators():
    assert str(mean_ci([2_000_000.0, 2_001_000.0, 1_999_000.0])) == "2,000,000 ± 2,484"


def test_welch_p_matches_the_closed_form_at_four_degrees_of_freedom():
    # [1,2,3] vs [4,5,6]: t = -3/sqrt(2/3), Welch df = 4, where the t CDF has a closed form
    t = -3 / math.sqrt(2 / 3)
    u = 1 + t * t / 4
    two_sided = 2 * (0.5 + 3 / 8 * (t / math.sqrt(u)) * (1 - t * t / (12 * u)))
    assert welch_p([1, 2, 3], [4, 5, 6]) == pytest.approx(two_sided, rel=1e-9)
    assert welch_p([4, 5, 6], [1, 2, 3]) == pytest.approx(two_sided, rel=1e-9)


def test_welch_p_edge_cases():
    assert math.isnan(welch_p([1.0], [2.0, 3.0]))  # one seed: no variance to test against
    assert welch_p([2.0, 2.0], [3.0, 3.0]) == 0.0  # deterministic and different
    assert welch_p([2.0, 2.0], [2.0, 2.0]) == 1.0
    assert welch_p([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
