"""The calibrated-params file: TOML that the simulator loads; its sha256 is the calibration digest.

    format = "lazylab-calibration/1"
    created_utc = "2026-11-28T12:00:00+00:00"
    machine = "hostname, 2 CPUs, Linux ..."
    note = "..."                      # where the measurements came from

    [params]                          # sim.params.CalibratedParams, field for field
    request_overhead_s = 0.00041
    bandwidth_efficiency = 0.93
    fuse_op_s = 2.1e-05
    ...

    [params.model]                    # the finer model (FittedParams.model_*, prefix dropped);
    request_overhead_s = 0.0003       # a table, so sim.params.load_params skips it
    rtts_per_request = 1.0
    range_overhead_s = 0.0
    decode_call_s = 4e-06
    extract_file_s = 1.5e-05
    bandwidth_levels_bytes_per_s = [1250000.0, 12500000.0, 125000000.0]
    bandwidth_efficiencies = [0.96, 0.95, 0.71]

    [fit.request_overhead_s]          # one table per fitted quantity
    fitted = true
    stderr = 1.2e-05
    n = 120
    rmse_s = 0.0004
    r2 = 0.999
    rel_error_median = 0.02

The digest ("sha256:" + hex, as sim/params.py computes it) covers the whole file, header and fit
statistics included: a re-measured file is a new calibration even when the values agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import platform
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from experiments.calibration import MODEL_FIELDS, OPTIONAL_FIELDS, SCALARS, FitStat, FittedParams
from experiments.errors import CalibrationError
from experiments.framework import Calibration

FORMAT = "lazylab-calibration/1"
DEFAULT_PARAMS_PATH = Path(__file__).parent / "params" / "default.toml"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def machine_description() -> str:
    import os

    return f"{platform.node()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def dumps_params(params: FittedParams, *, note: str = "", created_utc: str | None = None,
                 machine: str | None = None) -> str:
    """The file text (deterministic for given arguments)."""
    p: dict[str, Any] = params.sim_params()
    model: dict[str, Any] = {n.removeprefix("model_"): float(getattr(params, n)) for n in MODEL_FIELDS}
    model["bandwidth_levels_bytes_per_s"] = [float(b) for b in params.model_bandwidth_levels_bytes_per_s]
    model["bandwidth_efficiencies"] = [float(e) for e in params.model_bandwidth_efficiencies]
    p["model"] = model
    if created_utc is None:
        created_utc = datetime.now(UTC).isoformat(timespec="seconds")
    doc: dict[str, Any] = {
        "format": FORMAT,
        "created_utc": created_utc,
        "machine": machine if machine is not None else machine_description(),
        "note": note,
        "params": p,
        "fit": {name: dataclasses.asdict(stat) for name, stat in sorted(params.fit.items())},
    }
    return tomli_w.dumps(doc)


def loads_params(text: str, where: str = "params file") -> FittedParams:
    """Parse a params file; unknown or missing parameters are errors naming the key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CalibrationError(f"{where}: not TOML ({e})") from None
    if doc.get("format") != FORMAT:
        raise CalibrationError(f"{where}: format (={doc.get('format')!r}) must be {FORMAT!r}")
    raw = doc.get("params")
    if not isinstance(raw, dict):
        raise CalibrationError(f"{where}: missing [params] table")
    model = raw.get("model", {})
    if not isinstance(model, dict):
        raise CalibrationError(f"{where}: params.model must be a table")
    flat = {k: v for k, v in raw.items() if k != "model"}
    flat.update({f"model_{k}": v for k, v in model.items()})
    lists = ("model_bandwidth_levels_bytes_per_s", "model_bandwidth_efficiencies")
    unknown = sorted(set(flat) - {*SCALARS, *lists})
    if unknown:
        label = unknown[0].replace("model_", "model.", 1)
        raise CalibrationError(f"{where}: unknown parameter params.{label}")
    kw: dict[str, Any] = {}
    for name in SCALARS:
        label = "params." + name.replace("model_", "model.", 1)
        if name not in flat:
            if name in OPTIONAL_FIELDS:  # files written before these were measured: 0 = not modelled
                continue
            raise CalibrationError(f"{where}: missing {label}")
        v = flat[name]
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise CalibrationError(f"{where}: {label} (={v!r}) must be a finite number")
        kw[name] = float(v)
    for name in lists:
        kw[name] = tuple(float(x) for x in flat.get(name, []))
    fit: dict[str, FitStat] = {}
    for name, stat in (doc.get("fit") or {}).items():
        try:
            fit[name] = FitStat(**stat)
        except TypeError as e:
            raise CalibrationError(f"{where}: fit.{name}: {e}") from None
    return FittedParams(**kw, fit=fit)


def write_params(params: FittedParams, path: str | Path, *, note: str = "", created_utc: str | None = None,
                 machine: str | None = None) -> Calibration:
    """Write the file and return the Calibration (digest of the bytes written) for it. Pass the
    measurements' time as `created_utc` so rewriting from the same measurements is a no-op."""
    text = dumps_params(params, note=note, created_utc=created_utc, machine=machine)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return Calibration(digest=_digest(text.encode()), params=params, path=str(path))


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The calibration in `path`; without a path, the committed default for this machine, or the
    built-in defaults (digest of their rendering) when no default file exists."""
    if path is None:
        if not DEFAULT_PARAMS_PATH.exists():
            return builtin_calibration()
        path = DEFAULT_PARAMS_PATH
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CalibrationError(f"cannot read params file {path}: {e.strerror}") from None
    params = loads_params(data.decode("utf-8", errors="replace"), str(path))
    return Calibration(digest=_digest(data), params=params, path=str(path))


def builtin_calibration() -> Calibration:
    """The documented defaults of FittedParams, uncalibrated (digest of a fixed rendering)."""
    text = dumps_params(FittedParams(), note="built-in defaults, not measured", created_utc="", machine="")
    return Calibration(digest=_digest(text.encode()), params=FittedParams(), path="")
