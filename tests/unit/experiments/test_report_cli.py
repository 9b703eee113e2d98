"""`lazylab experiment list | run | report`: reports come from cached results only; errors are one line."""

from __future__ import annotations

import pytest
import xp_engine

from experiments import registry
from experiments.cache import ResultCache
from experiments.report import write_report
from lazylab.cli import main


@pytest.fixture
def calls(tmp_path, monkeypatch):
    path = tmp_path / "calls.txt"
    monkeypatch.setenv("LAZYLAB_XP_COUNTER", str(path))
    monkeypatch.setitem(registry.EXPERIMENTS, "xp", "xp_engine:EXPERIMENT")
    monkeypatch.setitem(registry.EXPERIMENTS, "xp-fail", "xp_engine:FAILING")
    return lambda: len(path.read_text().splitlines()) if path.exists() else 0


def test_list_shows_runs_and_quick_runs(tmp_path, calls, capsys):
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    assert "xp" in out and "6 runs (1 quick)" in out and "Framework test experiment." in out
    assert "Second line" not in out


def test_run_then_report_from_cache_only(tmp_path, calls, capsys):
    res, rep = str(tmp_path / "results"), str(tmp_path / "reports")
    assert main(["experiment", "run", "xp", "--results", res, "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 runs, 0 cached, 6 ran, 0 failed" in out and "after: 6 successful runs" in out
    assert calls() == 6
    assert main(["experiment", "run", "xp", "--results", res, "--workers", "1", "--no-progress"]) == 0
    assert "6 cached, 0 ran" in capsys.readouterr().out
    assert main(["experiment", "report", "xp", "--results", res, "--reports", rep]) == 0
    assert calls() == 6  # the report ran nothing
    md = (tmp_path / "reports" / "xp.md").read_text()
    assert md.startswith("# xp\n")
    assert "6 cached for the current code and calibration, 0 from an older" in md
    assert "| mode | seeds | mean pull_s | mean time_to_ready_s | mean bytes_fetched |" in md
    # pull: rtt 1 ms + 100 kB at 10 MB/s, identical across seeds; ready varies by seed
    assert "| lazy | 3 | 0.011 ± 0 | 0.1598 ± 0.057 | 100,000 ± 0 |" in md
    assert "![Mean time to ready per mode](xp-ready.png)" in md
    assert (tmp_path / "reports" / "xp-ready.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_uses_older_runs_when_code_changed_and_lists_failures(tmp_path, calls):
    exp = xp_engine.EXPERIMENT
    from experiments.executor import run_sweep

    run_sweep(exp, results_dir=tmp_path, code_version="old", progress=False)
    path = write_report(exp, results_dir=tmp_path, reports_dir=tmp_path / "r", code_version="new")
    assert "0 cached for the current code and calibration, 6 from an older" in path.read_text()
    failing = xp_engine.FAILING
    run_sweep(failing, results_dir=tmp_path / "f", code_version="v", progress=False)
    md = write_report(failing, results_dir=tmp_path / "f", reports_dir=tmp_path / "r",
                      code_version="v").read_text()
    assert "### Failed runs" in md and "RuntimeError: asked to fail" in md


def test_user_errors_are_one_line(tmp_path, calls, capsys):
    assert main(["experiment", "run", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lazylab: error: no experiment named 'nope' (known: ") and "xp" in err
    assert err.count("\n") == 1
    assert main(["experiment", "report", "xp", "--results", str(tmp_path / "empty")]) == 2
    assert "no cached results for experiment 'xp'" in capsys.readouterr().err
    assert main(["experiment", "run", "xp", "--params", str(tmp_path / "absent.toml")]) == 2
    assert "cannot read params file" in capsys.readouterr().err
    assert main(["experiment", "run", "xp", "--workers", "0", "--results", str(tmp_path)]) == 2
    assert calls() == 0


def test_quick_run_and_failures_exit_nonzero(tmp_path, calls, capsys):
    assert main(["experiment", "run", "xp", "--quick", "--results", str(tmp_path), "--no-progress",
                 "--workers", "1"]) == 0
    assert "1 runs, 0 cached, 1 ran" in capsys.readouterr().out
    assert len(list(ResultCache(tmp_path).results("xp"))) == 1
    assert main(["experiment", "report", "xp", "--quick", "--results", str(tmp_path), "--reports",
                 str(tmp_path / "rep")]) == 0
    assert "| lazy | 1 |" in (tmp_path / "rep" / "xp-quick.md").read_text()
    assert (tmp_path / "rep" / "xp-quick-ready.png").exists() and not (tmp_path / "rep" / "xp.md").exists()
    assert main(["experiment", "run", "xp-fail", "--results", str(tmp_path), "--no-progress",
                 "--workers", "1"]) == 1
    assert "2 runs, 0 cached, 2 ran, 1 failed" in capsys.readouterr().out
