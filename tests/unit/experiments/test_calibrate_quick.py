"""`calibrate --quick` end to end: real range GETs over shaped loopback links, a fit, a params file.

Runs the emulator against registry_mock on 127.0.0.1 (and FUSE when /dev/fuse is there; without
it the FUSE costs keep their defaults and the run says so). Timings are not asserted: only that
every group was measured, the fit produced a loadable params file, and the report used the cache.
"""

from __future__ import annotations

import dataclasses

import pytest

from experiments import calibrate
from experiments.cache import ResultCache
from experiments.calibration import Measurement
from experiments.calibration_file import load_calibration
from experiments.executor import run_sweep
from experiments.measure import fuse_available
from experiments.report import write_report


@pytest.mark.timeout(180)
def test_quick_calibration_measures_fits_and_writes_params(tmp_path):
    quick = calibrate.EXPERIMENT.quick_variant()
    base = {**quick.base, "params_out": str(tmp_path / "params.toml")}
    exp = dataclasses.replace(quick, base=base)
    s = run_sweep(exp, results_dir=tmp_path / "results", progress=False)
    assert (s.ran, s.failed) == (1, 0), ResultCache(tmp_path / "results").load_result("calibrate", s.keys[0])
    assert "wrote" in s.message and "sha256:" in s.message
    run = ResultCache(tmp_path / "results").load("calibrate", s.keys[0])
    ms = [Measurement.from_row(r) for r in run.tables["measurements"]]
    links = {(m.bandwidth_bytes_per_s, m.rtt_s) for m in ms if m.op == "range_get"}
    cfg = base["links"]
    assert links == {(bw, rtt) for bw in cfg["bandwidths_bytes_per_s"] for rtt in cfg["rtts_s"]}
    ops = {(m.op, m.codec or m.via) for m in ms}
    assert {("decode", "zstd"), ("decode", "gzip"), ("extract", "")} <= ops
    assert (("read", "fuse") in ops) == fuse_available()
    # a GET can never beat the configured RTT plus the bytes at the configured rate
    for m in ms:
        if m.op == "range_get":
            assert m.duration_s >= m.rtt_s + m.nbytes / m.bandwidth_bytes_per_s * 0.9

    cal = load_calibration(tmp_path / "params.toml")
    assert cal.digest in s.message
    again = run_sweep(exp, results_dir=tmp_path / "results", progress=False)
    # a cache hit rewrites the same bytes: re-running calibrate does not invalidate calibrated runs
    assert again.cached == 1 and load_calibration(tmp_path / "params.toml").digest == cal.digest
    assert cal.params.fit["request_overhead_s"].fitted and cal.params.fit["bandwidth_efficiency"].n == 40
    assert 0 < cal.params.bandwidth_efficiency <= 1.5
    import sim.params as sim_params
    params, digest = sim_params.load_params(tmp_path / "params.toml")
    assert digest == cal.digest and params.request_overhead_s == cal.params.request_overhead_s

    md = write_report(exp, results_dir=tmp_path / "results", reports_dir=tmp_path / "reports").read_text()
    assert "### Calibrated parameters" in md and "| request_overhead_s |" in md
    assert (tmp_path / "reports" / "calibrate-gets.png").exists()
