"""The results cache: hits avoid re-running (counted, not timed), failures are recorded, sweeps go on."""

from __future__ import annotations

import json
import tomllib

import pytest
import xp_engine

from experiments.cache import ResultCache
from experiments.executor import run_sweep
from experiments.framework import Calibration, Experiment


@pytest.fixture
def counter(tmp_path, monkeypatch):
    path = tmp_path / "calls.txt"
    monkeypatch.setenv("LAZYLAB_XP_COUNTER", str(path))

    def calls() -> int:
        return len(path.read_text().splitlines()) if path.exists() else 0

    return calls


def make(**kw) -> Experiment:
    kw.setdefault("base", xp_engine.BASE)
    return Experiment(name="xp", run=xp_engine.run, **kw)


def test_rerun_is_a_cache_hit_and_a_new_level_runs_only_the_new_points(tmp_path, counter):
    exp = make(factors={"mode": ["full", "lazy"]}, replications=2)
    s1 = run_sweep(exp, results_dir=tmp_path / "r", code_version="v1", progress=False)
    assert (s1.ran, s1.cached, s1.failed) == (4, 0, 0)
    assert counter() == 4
    s2 = run_sweep(exp, results_dir=tmp_path / "r", code_version="v1", progress=False)
    assert (s2.ran, s2.cached) == (0, 4)
    assert counter() == 4
    wider = make(factors={"mode": ["full", "lazy", "partial"]}, replications=2)
    s3 = run_sweep(wider, results_dir=tmp_path / "r", code_version="v1", progress=False)
    assert (s3.ran, s3.cached) == (2, 4)
    assert counter() == 6


@pytest.mark.parametrize("change", ["code", "calibration", "seed"])
def test_code_calibration_or_seed_change_reruns(tmp_path, counter, change):
    exp = make()
    run_sweep(exp, results_dir=tmp_path, code_version="v1", calibration=Calibration(digest="c1"),
              progress=False)
    assert counter() == 1
    kw = {"code_version": "v1", "calibration": Calibration(digest="c1")}
    if change == "code":
        kw["code_version"] = "v2"
    elif change == "calibration":
        kw["calibration"] = Calibration(digest="c2")
    else:
        exp = make(first_seed=7)
    s = run_sweep(exp, results_dir=tmp_path, progress=False, **kw)  # type: ignore[arg-type]
    assert (s.ran, s.cached) == (1, 0)
    assert counter() == 2


def test_run_directory_holds_config_records_tables_and_envelope(tmp_path, counter):
    exp = make(factors={"link.rtt_s": [0.05]})
    s = run_sweep(exp, results_dir=tmp_path, code_version="v1", progress=False)
    d = tmp_path / "xp" / s.keys[0]
    config = tomllib.loads((d / "config.toml").read_text())
    assert config["config"]["link"]["rtt_s"] == 0.05
    assert config["factors"] == {"link.rtt_s": 0.05}
    result = json.loads((d / "result.json").read_text())
    assert result["error"] == "" and result["seed"] == 0 and result["code_version"] == "v1"
    assert result["n_records"] == 2 and result["wall_s"] >= 0 and result["sim_time_s"] > 0.05
    run = ResultCache(tmp_path).load("xp", s.keys[0])
    assert len(run.records) == 2 and run.records[0].pulled_s == pytest.approx(0.05 + 0.1)
    assert run.tables["egress"] == [{"t_s": "0.0", "bytes": "1000000"}]


def test_failed_run_keeps_config_and_error_and_the_sweep_continues(tmp_path, counter):
    exp = make(factors={"fail": [False, True], "mode": ["full", "lazy"]})
    s = run_sweep(exp, results_dir=tmp_path, code_version="v1", progress=False)
    assert (s.ran, s.failed) == (4, 2)
    cache = ResultCache(tmp_path)
    results = [cache.load_result("xp", k) for k in s.keys]
    failed = [r for r in results if r is not None and not r.ok]
    assert len(failed) == 2
    for r in failed:
        assert r.effective_config["fail"] is True
        assert r.error.startswith("RuntimeError: asked to fail")
        assert "Traceback" in r.traceback and "xp_engine.py" in r.traceback
        assert (tmp_path / "xp" / r.key / "config.toml").exists()
    # failures are retried by default, or accepted as final on request; successes never re-run
    s2 = run_sweep(exp, results_dir=tmp_path, code_version="v1", progress=False)
    assert (s2.ran, s2.cached, s2.failed) == (2, 2, 2)
    s3 = run_sweep(exp, results_dir=tmp_path, code_version="v1", progress=False, accept_failed=True)
    assert (s3.ran, s3.cached) == (0, 4)
    assert counter() == 6


def test_a_run_returning_wrong_rows_is_a_failure_not_a_crash(tmp_path):
    s = run_sweep(Experiment(name="bad", run=_returns_junk), results_dir=tmp_path, code_version="v",
                  progress=False)
    assert s.failed == 1
    r = ResultCache(tmp_path).load_result("bad", s.keys[0])
    assert r is not None and "expected StartupRecord" in r.error


def _returns_junk(config, seed, calibration):
    return [{"not": "a record"}]
