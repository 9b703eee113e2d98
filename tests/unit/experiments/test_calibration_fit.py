"""The calibration fit recovers known parameters from synthetic noisy measurements and states its error."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from experiments.calibration import FittedParams, Measurement, fit_params
from experiments.calibration_file import dumps_params, load_calibration, loads_params, write_params
from experiments.errors import CalibrationError

TRUE = FittedParams(
    request_overhead_s=0.0008, rtts_per_request=2.0, range_overhead_s=1e-4,
    bandwidth_levels_bytes_per_s=(1.25e6, 1.25e7, 1.25e8), bandwidth_efficiency=(0.95, 0.9, 0.6),
    fuse_op_s=30e-6, fuse_byte_s=0.5e-9, decode_call_s=3e-6, decode_zstd_bytes_per_s=8e8,
    decode_gzip_bytes_per_s=2.5e8, extract_file_s=25e-6, extract_bytes_per_s=6e8,
)
INPROC_OP_S, INPROC_BYTE_S = 2e-6, 0.1e-9


def synthetic(rng: np.random.Generator, noise: float, rtts=(0.001, 0.05)) -> list[Measurement]:
    """Measurements generated from TRUE with multiplicative lognormal noise."""
    def jitter(d: float) -> float:
        return d * float(np.exp(rng.normal(0.0, noise)))

    ms: list[Measurement] = []
    for bw in TRUE.bandwidth_levels_bytes_per_s:
        for rtt in rtts:
            for _ in range(40):
                n = int(10 ** rng.uniform(2, 7))
                ranges = int(rng.integers(1, 20))
                d = TRUE.predict_get_s(n, bw, rtt, ranges)
                ms.append(Measurement(op="range_get", duration_s=jitter(d), nbytes=n, count=ranges,
                                      bandwidth_bytes_per_s=bw, rtt_s=rtt))
    for _ in range(60):
        n = int(10 ** rng.uniform(2, 7))
        base = INPROC_OP_S + INPROC_BYTE_S * n
        ms.append(Measurement(op="read", via="inprocess", duration_s=jitter(base), nbytes=n))
        ms.append(Measurement(op="read", via="fuse", nbytes=n,
                              duration_s=jitter(base + TRUE.fuse_op_s + TRUE.fuse_byte_s * n)))
    for codec, bps in (("zstd", TRUE.decode_zstd_bytes_per_s), ("gzip", TRUE.decode_gzip_bytes_per_s)):
        for _ in range(40):
            n = int(10 ** rng.uniform(3, 7))
            ms.append(Measurement(op="decode", codec=codec, nbytes=n,
                                  duration_s=jitter(TRUE.decode_call_s + n / bps)))
    for _ in range(40):
        files = int(rng.integers(1, 2000))
        n = int(files * 10 ** rng.uniform(2, 5))
        ms.append(Measurement(op="extract", nbytes=n, count=files,
                              duration_s=jitter(TRUE.extract_file_s * files + n / TRUE.extract_bytes_per_s)))
    return ms


def test_fit_recovers_known_parameters_from_noisy_measurements():
    fitted = fit_params(synthetic(np.random.default_rng(np.random.SeedSequence(7)), noise=0.03))
    for name in ("request_overhead_s", "rtts_per_request", "fuse_op_s", "fuse_byte_s",
                 "decode_zstd_bytes_per_s", "decode_gzip_bytes_per_s", "extract_file_s",
                 "extract_bytes_per_s"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.1), name
        stat = fitted.fit[name]
        assert stat.fitted and stat.n > 0 and 0 < stat.stderr < abs(getattr(fitted, name)), name
        # the truth lies within a few standard errors of the estimate
        assert abs(getattr(fitted, name) - getattr(TRUE, name)) < 5 * stat.stderr, name
        assert stat.r2 > 0.98 and 0.005 < stat.rel_error_median < 0.05, name
    assert fitted.range_overhead_s == pytest.approx(TRUE.range_overhead_s, rel=0.3)
    assert fitted.bandwidth_levels_bytes_per_s == TRUE.bandwidth_levels_bytes_per_s
    assert fitted.bandwidth_efficiency == pytest.approx(TRUE.bandwidth_efficiency, rel=0.03)
    assert fitted.fit["bandwidth_efficiency@1.25e+07"].fitted


def test_noise_free_measurements_are_fitted_exactly():
    fitted = fit_params(synthetic(np.random.default_rng(1), noise=0.0))
    assert fitted.request_overhead_s == pytest.approx(TRUE.request_overhead_s, rel=1e-6)
    assert fitted.efficiency(1.25e7) == pytest.approx(0.9, rel=1e-6)
    assert fitted.fit["request_overhead_s"].rmse_s < 1e-12


def test_efficiency_interpolates_in_log_rate_and_clamps():
    assert TRUE.efficiency(1.25e6) == pytest.approx(0.95)
    assert TRUE.efficiency(math.sqrt(1.25e6 * 1.25e7)) == pytest.approx(0.925)
    assert TRUE.efficiency(1e12) == pytest.approx(0.6)
    assert FittedParams().efficiency(1e6) == 1.0


def test_single_rtt_level_fixes_rtts_per_request_and_unmeasured_groups_keep_defaults():
    ms = [m for m in synthetic(np.random.default_rng(2), 0.01, rtts=(0.02,)) if m.op == "range_get"]
    fitted = fit_params(ms)
    assert fitted.rtts_per_request == 1.0 and not fitted.fit["rtts_per_request"].fitted
    # with rtts fixed at 1, the true second RTT (0.02 s) lands in the overhead
    assert fitted.request_overhead_s == pytest.approx(TRUE.request_overhead_s + 0.02, rel=0.05)
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
    assert loaded.digest == cal.digest == hashlib.sha256((tmp_path / "p.toml").read_bytes()).hexdigest()
    assert loaded.params.request_overhead_s == fitted.request_overhead_s
    assert loaded.params.bandwidth_efficiency == fitted.bandwidth_efficiency
    assert loaded.params.fit["fuse_op_s"] == fitted.fit["fuse_op_s"]
    assert loaded.params.fit["range_overhead_s"].fitted
    other = write_params(fitted, tmp_path / "q.toml", note="another run")
    assert other.digest != cal.digest


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.replace('format = "lazylab-calibration/1"', 'format = "x"'), "format"),
        (lambda t: t.replace("fuse_op_s =", "fuse_opp_s ="), "unknown parameter params.fuse_opp_s"),
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
