"""The calibration fit recovers known parameters from synthetic noisy measurements and states its error."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest

from experiments.calibration import FittedParams, Measurement, fit_params
from experiments.calibration_file import dumps_params, load_calibration, loads_params, write_params
from experiments.errors import CalibrationError

TRUE = FittedParams(
    model_request_overhead_s=0.0008, model_rtts_per_request=2.0, model_range_overhead_s=1e-4,
    model_bandwidth_levels_bytes_per_s=(1.25e6, 1.25e7, 1.25e8),
    model_bandwidth_efficiencies=(0.95, 0.9, 0.6),
    fuse_op_s=30e-6, fuse_byte_s=0.5e-9, local_op_s=2e-6, local_read_bytes_per_s=1e10,
    model_decode_call_s=3e-6, zstd_decode_bytes_per_s=8e8, gzip_decode_bytes_per_s=2.5e8,
    model_extract_file_s=25e-6, extract_bytes_per_s=6e8,
)


def synthetic(rng: np.random.Generator, noise: float, rtts=(0.001, 0.05), truth=TRUE) -> list[Measurement]:
    """Measurements generated from `truth`'s finer model with multiplicative lognormal noise."""
    def jitter(d: float) -> float:
        return d * float(np.exp(rng.normal(0.0, noise)))

    ms: list[Measurement] = []
    for bw in truth.model_bandwidth_levels_bytes_per_s:
        for rtt in rtts:
            for _ in range(40):
                n = int(10 ** rng.uniform(2, 7))
                ranges = int(rng.integers(1, 20))
                d = truth.predict_get_model_s(n, bw, rtt, ranges)
                ms.append(Measurement(op="range_get", duration_s=jitter(d), nbytes=n, count=ranges,
                                      bandwidth_bytes_per_s=bw, rtt_s=rtt))
    for _ in range(60):
        n = int(10 ** rng.uniform(2, 7))
        base = truth.local_op_s + n / truth.local_read_bytes_per_s
        ms.append(Measurement(op="read", via="inprocess", duration_s=jitter(base), nbytes=n))
        ms.append(Measurement(op="read", via="fuse", nbytes=n,
                              duration_s=jitter(base + truth.fuse_op_s + truth.fuse_byte_s * n)))
    for codec, bps in (("zstd", truth.zstd_decode_bytes_per_s), ("gzip", truth.gzip_decode_bytes_per_s)):
        for _ in range(40):
            n = int(10 ** rng.uniform(3, 7))
            ms.append(Measurement(op="decode", codec=codec, nbytes=n,
                                  duration_s=jitter(truth.model_decode_call_s + n / bps)))
    for _ in range(40):
        files = int(rng.integers(1, 2000))
        n = int(files * 10 ** rng.uniform(2, 5))
        d = truth.model_extract_file_s * files + n / truth.extract_bytes_per_s
        ms.append(Measurement(op="extract", nbytes=n, count=files, duration_s=jitter(d)))
    return ms


def test_fit_recovers_known_parameters_from_noisy_measurements():
    fitted = fit_params(synthetic(np.random.default_rng(np.random.SeedSequence(7)), noise=0.03))
    for name in ("model_request_overhead_s", "model_rtts_per_request", "fuse_op_s", "fuse_byte_s",
                 "local_op_s", "local_read_bytes_per_s", "zstd_decode_bytes_per_s", "gzip_decode_bytes_per_s",
                 "model_decode_call_s", "model_extract_file_s", "extract_bytes_per_s"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.15), name
        stat = fitted.fit[name]
        assert stat.fitted and stat.n > 0 and 0 < stat.stderr < abs(getattr(fitted, name)), name
        # the truth lies within a few standard errors of the estimate
        assert abs(getattr(fitted, name) - getattr(TRUE, name)) < 5 * stat.stderr, name
        assert stat.r2 > 0.98 and 0.005 < stat.rel_error_median < 0.05, name
    assert fitted.model_range_overhead_s == pytest.approx(TRUE.model_range_overhead_s, rel=0.3)
    assert fitted.model_bandwidth_levels_bytes_per_s == TRUE.model_bandwidth_levels_bytes_per_s
    assert fitted.model_bandwidth_efficiencies == pytest.approx(TRUE.model_bandwidth_efficiencies, rel=0.03)
    assert fitted.fit["model_bandwidth_efficiency@1.25e+07"].fitted
    assert not fitted.fit["create_s"].fitted and fitted.create_s == FittedParams().create_s


def test_simulator_form_is_exact_when_the_world_matches_it():
    """One RTT per request, one efficiency at every rate: the sim's two GET params come back."""
    truth = FittedParams(model_request_overhead_s=0.0006, model_bandwidth_levels_bytes_per_s=(1.25e6, 1.25e8),
                         model_bandwidth_efficiencies=(0.9, 0.9))
    ms = [m for m in synthetic(np.random.default_rng(5), 0.02, truth=truth) if m.op == "range_get"]
    ms = [Measurement(op=m.op, nbytes=m.nbytes, bandwidth_bytes_per_s=m.bandwidth_bytes_per_s, rtt_s=m.rtt_s,
                      duration_s=truth.predict_get_model_s(m.nbytes, m.bandwidth_bytes_per_s, m.rtt_s))
          for m in ms]
    fitted = fit_params(ms)
    assert fitted.request_overhead_s == pytest.approx(0.0006, rel=1e-6)
    assert fitted.bandwidth_efficiency == pytest.approx(0.9, rel=1e-6)
    assert fitted.predict_get_s(10**6, 1.25e7, 0.05) == pytest.approx(0.05 + 0.0006 + 10**6 / (0.9 * 1.25e7))
    assert fitted.fit["request_overhead_s"].rmse_s < 1e-12
    assert fitted.sim_params()["bandwidth_efficiency"] == pytest.approx(0.9)


def test_noise_free_measurements_are_fitted_exactly():
    fitted = fit_params(synthetic(np.random.default_rng(1), noise=0.0))
    assert fitted.model_request_overhead_s == pytest.approx(TRUE.model_request_overhead_s, rel=1e-6)
    assert fitted.efficiency(1.25e7) == pytest.approx(0.9, rel=1e-6)
    assert fitted.fit["model_request_overhead_s"].rmse_s < 1e-12
    # the sim's coarser form cannot follow 2 RTTs and per-rate efficiency: its error says so
    assert fitted.fit["request_overhead_s"].rel_error_median > 0.01


def test_efficiency_interpolates_in_log_rate_and_clamps():
    assert TRUE.efficiency(1.25e6) == pytest.approx(0.95)
    assert TRUE.efficiency(math.sqrt(1.25e6 * 1.25e7)) == pytest.approx(0.925)
    assert TRUE.efficiency(1e12) == pytest.approx(0.6)
    assert FittedParams().efficiency(1e6) == FittedParams().bandwidth_efficiency


def test_single_rtt_level_fixes_rtts_per_request_and_unmeasured_groups_keep_defaults():
    ms = [m for m in synthetic(np.random.default_rng(2), 0.01, rtts=(0.02,)) if m.op == "range_get"]
    fitted = fit_params(ms)
    assert fitted.model_rtts_per_request == 1.0 and not fitted.fit["model_rtts_per_request"].fitted
    # with rtts fixed at 1, the true second RTT (0.02 s) lands in the overhead
    assert fitted.model_request_overhead_s == pytest.approx(TRUE.model_request_overhead_s + 0.02, rel=0.05)
    assert fitted.fuse_op_s == FittedParams().fuse_op_s and not fitted.fit["fuse_op_s"].fitted


@pytest.mark.parametrize(
    ("ms", "match"),
    [
        ([], "no measurements"),
        ([Measurement(op="extract", nbytes=10, count=1, duration_s=1.0)] * 2, "cannot fit"),
        ([Measurement(op="read", via="fuse", nbytes=10, duration_s=1.0)] * 5, "both via fuse and inprocess"),
        ([Measurement(op="extract", nbytes=100 * i, count=i, duration_s=0.1 * i) for i in range(1, 6)],
         "rank"),
    ],
)
def test_unusable_measurements_raise_calibration_error(ms, match):
    with pytest.raises(CalibrationError, match=match):
        fit_params(ms)


def test_measurement_rows_are_validated_and_parsed_from_csv_strings():
    with pytest.raises(CalibrationError, match="duration_s"):
        Measurement(op="decode", codec="zstd", nbytes=1, duration_s=0.0)
    with pytest.raises(CalibrationError, match="op"):
        Measurement(op="teleport", nbytes=1, duration_s=1.0)
    m = Measurement.from_row({"op": "range_get", "duration_s": "0.5", "nbytes": "100", "count": "",
                              "bandwidth_bytes_per_s": "1e6", "rtt_s": "0.01", "via": "", "codec": ""})
    assert m == Measurement(op="range_get", duration_s=0.5, nbytes=100, bandwidth_bytes_per_s=1e6, rtt_s=0.01)


def test_params_file_round_trip_and_digest(tmp_path):
    fitted = fit_params(synthetic(np.random.default_rng(3), 0.02))
    cal = write_params(fitted, tmp_path / "p.toml", note="synthetic")
    loaded = load_calibration(tmp_path / "p.toml")
    digest = "sha256:" + hashlib.sha256((tmp_path / "p.toml").read_bytes()).hexdigest()
    assert loaded.digest == cal.digest == digest
    assert dataclasses.replace(loaded.params, fit={}) == dataclasses.replace(fitted, fit={})
    assert loaded.params.fit["fuse_op_s"] == fitted.fit["fuse_op_s"]
    assert set(loaded.params.fit) == set(fitted.fit)
    assert loaded.params.fit["model_range_overhead_s"].fitted
    other = write_params(fitted, tmp_path / "q.toml", note="another run")
    assert other.digest != cal.digest


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.replace('format = "lazylab-calibration/1"', 'format = "x"'), "format"),
        (lambda t: t.replace("fuse_op_s =", "fuse_opp_s ="), r"unknown parameter params\.fuse_opp_s"),
        (lambda t: t.replace("rtts_per_request =", "rtt_per_request ="), r"params\.model\.rtt_per_request"),
        (lambda t: t.replace("create_s =", "# create_s ="), r"missing params\.create_s"),
        (lambda t: t + "\n[[[", "not TOML"),
    ],
)
def test_bad_params_files_name_the_problem(tmp_path, edit, match):
    text = dumps_params(FittedParams(), note="", created_utc="", machine="")
    (tmp_path / "p.toml").write_text(edit(text))
    with pytest.raises(CalibrationError, match=match):
        load_calibration(tmp_path / "p.toml")
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(tmp_path / "absent.toml")


def test_loads_rejects_non_numbers():
    text = dumps_params(FittedParams(), created_utc="", machine="")
    text = text.replace("fuse_op_s = 2e-05", 'fuse_op_s = "x"')
    with pytest.raises(CalibrationError, match=r"params\.fuse_op_s"):
        loads_params(text)


def test_simulator_loads_the_params_file_with_the_same_digest(tmp_path):
    import sim.params as sim_params
    fitted = fit_params(synthetic(np.random.default_rng(4), 0.02))
    cal = write_params(fitted, tmp_path / "p.toml")
    params, digest = sim_params.load_params(tmp_path / "p.toml")
    assert digest == cal.digest
    assert params == sim_params.CalibratedParams(**fitted.sim_params())


def test_a_cost_that_fits_negative_is_held_at_zero_and_flagged():
    """FUSE adds a fixed cost but (in these data) saves a little per byte: no negative cost ships."""
    ms = []
    for n in (10, 1_000, 10_000, 100_000, 1_000_000, 3_000_000):
        base = 2e-6 + n * 1e-10
        ms.append(Measurement(op="read", via="inprocess", nbytes=n, duration_s=base))
        ms.append(Measurement(op="read", via="fuse", nbytes=n, duration_s=base + 30e-6 - n * 1e-12))
    fitted = fit_params(ms)
    assert fitted.fuse_byte_s == 0.0 and fitted.fit["fuse_byte_s"].at_bound
    assert math.isnan(fitted.fit["fuse_byte_s"].stderr)
    assert fitted.fuse_op_s > 0 and not fitted.fit["fuse_op_s"].at_bound
    assert fitted.local_op_s == pytest.approx(2e-6, rel=0.01)


def test_fit_recovers_the_lazy_stores_verify_and_toc_parse_costs():
    """Synthetic verify batches (units, decoded bytes) and TOC parses (bytes read) from known costs:
    the per-unit and per-byte verify cost and the per-byte TOC cost come back with their errors."""
    rng = np.random.default_rng(np.random.SeedSequence(11))
    per_byte, per_unit, toc_per_byte = 18e-9, 40e-6, 0.6e-6
    ms = []
    for _ in range(60):
        units = int(rng.integers(1, 64))
        n = int(units * 10 ** rng.uniform(2, 5.5))
        d = per_unit * units + per_byte * n
        jitter = float(np.exp(rng.normal(0, 0.03)))
        ms.append(Measurement(op="verify", nbytes=n, count=units, duration_s=d * jitter))
    for _ in range(20):
        n = int(10 ** rng.uniform(3, 6))
        ms.append(Measurement(op="toc_parse", nbytes=n, count=n // 100,
                              duration_s=toc_per_byte * n * float(np.exp(rng.normal(0, 0.03)))))
    fitted = fit_params(ms)
    for name, truth in (("lazy_verify_s_per_byte", per_byte), ("lazy_verify_s_per_unit", per_unit),
                        ("toc_parse_s_per_byte", toc_per_byte)):
        got = getattr(fitted, name)
        stat = fitted.fit[name]
        assert got == pytest.approx(truth, rel=0.1), name
        assert stat.fitted and stat.n > 0 and 0 < stat.stderr and abs(got - truth) < 5 * stat.stderr, name
        assert fitted.sim_params()[name] == got
    assert not fitted.fit["extract_bytes_per_s"].fitted  # the other groups were not measured


def test_params_files_written_before_the_lazy_store_costs_load_with_them_at_zero(tmp_path):
    text = dumps_params(FittedParams(lazy_verify_s_per_byte=1e-8), created_utc="", machine="")
    old = "\n".join(line for line in text.splitlines()
                    if not line.startswith(("lazy_verify_s_per_", "toc_parse_s_per_byte")))
    fitted = loads_params(old)
    for name in ("lazy_verify_s_per_byte", "lazy_verify_s_per_unit", "toc_parse_s_per_byte"):
        assert getattr(fitted, name) == 0.0, name
    assert loads_params(text).lazy_verify_s_per_byte == 1e-8
