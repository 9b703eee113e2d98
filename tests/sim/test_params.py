"""CalibratedParams files: TOML/JSON, unknown keys, digest of the bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sim.params import CalibratedParams, ParamsError, default_digest, load_params

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_their_digest() -> None:
    params, digest = load_params(None)
    assert params == CalibratedParams() and digest == default_digest() and digest.startswith("sha256:")


def test_toml_and_json_files(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text("[params]\nfuse_op_s = 3e-5\ncreate_s = 0.1\n[params.model]\nfit_error = 0.02\n")
    params, digest = load_params(toml)
    assert params.fuse_op_s == 3e-5 and params.create_s == 0.1
    assert digest == "sha256:" + hashlib.sha256(toml.read_bytes()).hexdigest()
    js = tmp_path / "p.json"
    js.write_text('{"zstd_decode_bytes_per_s": 1e9}')
    assert load_params(js)[0].zstd_decode_bytes_per_s == 1e9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fuse_op = 1", "unknown parameter 'fuse_op'"),
        ("fuse_op_s = 'fast'", "must be a number"),
        ("fuse_op_s = -1", r"fuse_op_s \(=-1.0\) must be a finite number >= 0"),
        ("bandwidth_efficiency = 1.5", r"bandwidth_efficiency \(=1.5\) must be in \(0, 1\]"),
        ("= 1", "not valid TOML"),
    ],
)
def test_bad_params_files(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "p.toml"
    p.write_text(text)
    with pytest.raises(ParamsError, match=message):
        load_params(p)
    with pytest.raises(ParamsError, match="cannot read params file"):
        load_params(tmp_path / "missing.toml")


def test_the_committed_default_params_file_loads() -> None:
    path = ROOT / "experiments" / "params" / "default.toml"
    if not path.exists():
        pytest.skip("no committed params file yet")
    params, digest = load_params(path)
    assert isinstance(params, CalibratedParams) and digest.startswith("sha256:")
