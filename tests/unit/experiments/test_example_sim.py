"""The example experiment over the real simulator: effective configs key stably, runs are cached."""

from __future__ import annotations

from experiments.cache import ResultCache
from experiments.calibration import FittedParams
from experiments.calibration_file import write_params
from experiments.engines import sim_effective
from experiments.example import EXPERIMENT
from experiments.executor import run_sweep
from experiments.framework import Calibration
from experiments.report import write_report


def test_effective_config_spells_out_defaults_and_drops_the_seed():
    eff = sim_effective(EXPERIMENT.base)
    assert "seed" not in eff
    assert eff["registry"]["service_time_s"] >= 0  # a default the base never mentioned
    assert sim_effective(eff) == eff  # idempotent: equal scenarios, equal keys


def test_quick_example_runs_the_simulator_and_reports(tmp_path):
    cal = write_params(FittedParams(request_overhead_s=0.001), tmp_path / "p.toml")
    quick = EXPERIMENT.quick_variant()
    s = run_sweep(quick, results_dir=tmp_path / "r", calibration=cal, progress=False)
    assert (s.ran, s.failed) == (2, 0), s.first_error
    runs = [ResultCache(tmp_path / "r").load("example", k) for k in s.keys]
    assert {r.records[0].mode.value for r in runs} == {"full", "lazy"}
    assert all(r.result.calibration_digest == cal.digest and r.records[0].ok for r in runs)
    full, lazy = sorted(runs, key=lambda r: r.records[0].mode.value)
    assert lazy.records[0].pull_s < full.records[0].pull_s
    # another calibration is another run
    other = Calibration(digest="x", params=FittedParams())
    s2 = run_sweep(quick, results_dir=tmp_path / "r", calibration=other, progress=False)
    assert s2.ran == 2
    md = write_report(quick, results_dir=tmp_path / "r", reports_dir=tmp_path / "rep", calibration=cal)
    md = md.read_text()
    assert "| full | 0.001 | 1 |" in md and (tmp_path / "rep" / "example-ready-vs-rtt.png").exists()
