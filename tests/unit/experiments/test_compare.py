"""Prediction vs measurement: errors per point and metric, mode rankings, crossover points."""

from __future__ import annotations

import math

import pytest

from experiments.compare import crossovers, error_summary, point_errors, ranking_agreement, ranking_table
from experiments.framework import RunData, RunResult
from startup.modes import PullMode
from startup.record import StartupRecord


def run(engine: str, mode: str, bw: float, ready_s: float, seed: int = 0, fetched: int = 1000) -> RunData:
    factors = {"engine": engine, "mode": mode, "bw": bw}
    result = RunResult(experiment="v", key=f"{engine}{mode}{bw}{seed}", effective_config=factors,
                       factors=factors, seed=seed, code_version="v", calibration_digest="c")
    rec = StartupRecord(engine="sim" if engine == "sim" else "emulator", scenario="s", seed=seed, node="n",
                        pod="p", image="i", mode=PullMode(mode), submitted_s=0.0, pulled_s=ready_s / 2,
                        created_s=ready_s / 2, ready_s=ready_s, bytes_layers=fetched)
    return RunData(result=result, records=(rec,))


def test_point_errors_and_summary():
    runs = [run("sim", "lazy", 1.0, 1.1), run("emulator", "lazy", 1.0, 1.0, seed=0),
            run("emulator", "lazy", 1.0, 1.0, seed=1), run("sim", "full", 1.0, 3.0),
            run("emulator", "full", 1.0, 4.0)]
    errs = point_errors(runs, by=("mode", "bw"), metrics=("time_to_ready_s", "bytes_fetched"))
    by = {(e.point, e.metric): e for e in errs}
    assert by[(("lazy", 1.0), "time_to_ready_s")].error == pytest.approx(0.1)
    assert by[(("full", 1.0), "time_to_ready_s")].error == pytest.approx(-0.25)
    assert by[(("full", 1.0), "bytes_fetched")].error == 0.0
    summary = error_summary(errs)
    row = next(r for r in summary.rows if r[0] == "time_to_ready_s")
    assert row[1:] == (2, pytest.approx(0.175), pytest.approx(0.25), 0.0, 1.0)
    with pytest.raises(ValueError, match="engine"):
        point_errors(runs, by=("engine", "mode"))


def test_missing_engine_gives_nan_not_a_crash():
    errs = point_errors([run("sim", "lazy", 1.0, 1.0)], by=("mode",), metrics=("time_to_ready_s",))
    assert math.isnan(errs[0].error)


def test_ranking_agrees_up_to_ties_and_names_disagreements():
    runs = [run("sim", "lazy", 1.0, 1.0), run("sim", "full", 1.0, 3.0), run("sim", "partial", 1.0, 2.95),
            run("emulator", "lazy", 1.0, 1.2), run("emulator", "full", 1.0, 2.9),
            run("emulator", "partial", 1.0, 3.0),
            run("sim", "lazy", 2.0, 1.0), run("sim", "full", 2.0, 0.5),
            run("emulator", "lazy", 2.0, 0.4), run("emulator", "full", 2.0, 0.5)]
    ranks = {r.point: r for r in ranking_agreement(runs, by=("bw",))}
    assert ranks[(1.0,)].agree  # full vs partial differ by < 2% in sim: a tie, not a disagreement
    assert ranks[(1.0,)].predicted[0] == "lazy"
    assert not ranks[(2.0,)].agree and ranks[(2.0,)].disagreements == (("full", "lazy"),)
    table = ranking_table(list(ranks.values()), by=("bw",))
    assert table.rows[1][-1] == "no: full/lazy"


def test_a_pair_the_measured_seeds_do_not_order_is_unresolved_not_a_disagreement():
    runs = [run("sim", "lazy", 1.0, 2.24), run("sim", "full", 1.0, 1.92)]
    for seed, (lazy, full) in enumerate(((1.96, 2.25), (2.02, 2.54), (2.42, 2.38))):  # overlapping seeds
        runs += [run("emulator", "lazy", 1.0, lazy, seed=seed), run("emulator", "full", 1.0, full, seed=seed)]
    for seed, (lazy, full) in enumerate(((1.90, 2.40), (1.95, 2.45), (2.00, 2.50))):  # well separated
        runs += [run("emulator", "lazy", 2.0, lazy, seed=seed), run("emulator", "full", 2.0, full, seed=seed)]
    runs += [run("sim", "lazy", 2.0, 2.24), run("sim", "full", 2.0, 1.92)]
    ranks = {r.point: r for r in ranking_agreement(runs, by=("bw",))}
    noisy, clear = ranks[(1.0,)], ranks[(2.0,)]
    assert noisy.agree and noisy.disagreements == ()
    assert [(a, b) for a, b, _ in noisy.unresolved] == [("full", "lazy")] and noisy.unresolved[0][2] > 0.05
    assert not clear.agree and clear.disagreements == (("full", "lazy"),) and clear.unresolved == ()
    rows = ranking_table([noisy, clear], by=("bw",)).rows
    assert rows[0][-1].startswith("yes; measured order not resolved: full/lazy (p = 0.")
    assert rows[1][-1] == "no: full/lazy"


def test_crossovers_per_engine():
    runs = []
    for bw, lazy, full in ((1.0, 1.0, 5.0), (10.0, 1.0, 1.5), (100.0, 1.0, 0.5), (1000.0, 1.0, 0.2)):
        runs += [run("sim", "lazy", bw, lazy), run("sim", "full", bw, full)]
        runs += [run("emulator", "lazy", bw, lazy), run("emulator", "full", bw, full * 2.5)]
    assert crossovers(runs, along="bw", modes=("lazy", "full"), engine="sim") == [(10.0, 100.0)]
    assert crossovers(runs, along="bw", modes=("lazy", "full"), engine="emulator") == [(100.0, 1000.0)]


def test_crossovers_skip_levels_the_seeds_do_not_resolve():
    runs = []
    levels = {1.0: ((1.0, 5.0), (1.1, 5.2)), 10.0: ((1.0, 0.5), (1.1, 0.6)),  # resolved both ways
              100.0: ((1.0, 1.25), (1.2, 1.05))}  # lazy faster on average, but not resolved
    for bw, seeds in levels.items():
        for seed, (lazy, full) in enumerate(seeds):
            runs += [run("emulator", "lazy", bw, lazy, seed=seed),
                     run("emulator", "full", bw, full, seed=seed)]
    assert crossovers(runs, along="bw", modes=("lazy", "full"), engine="emulator") == [(1.0, 10.0)]
    assert crossovers(runs, along="bw", modes=("lazy", "full"), engine="emulator", alpha=1.0) == \
        [(1.0, 10.0), (10.0, 100.0)]
