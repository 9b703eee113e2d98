"""`CalibratedParams`: the machine costs the simulator does not take from the scenario.

Fitted by the calibration experiment (issue 6) from emulator measurements and loaded from a
TOML or JSON file; the sha256 of the file's bytes is the run's `calibration_digest` (the
digest of the canonical JSON of the defaults when no file is given). Defaults are documented
in docs/model.md (order-of-magnitude figures for a current x86 server core).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path


class ParamsError(ValueError):
    """A params file that cannot be read or holds unknown/invalid values."""


@dataclass(frozen=True, kw_only=True)
class CalibratedParams:
    request_overhead_s: float = 0.0002  # client + server per request, on top of RTT and service time
    bandwidth_efficiency: float = 0.95  # goodput / configured link rate (TCP/TLS/HTTP framing)
    fuse_op_s: float = 20e-6  # CPU per FUSE operation (context switches, lookup)
    fuse_byte_s: float = 0.5e-9  # CPU per byte through FUSE (copies): 2 GB/s
    zstd_decode_bytes_per_s: float = 800e6  # output bytes per second, one core
    gzip_decode_bytes_per_s: float = 250e6
    extract_bytes_per_s: float = 500e6  # writing files to the container store (full/partial)
    local_read_bytes_per_s: float = 4e9  # reads from a local (page-cached) rootfs
    local_op_s: float = 2e-6  # per local file operation
    create_s: float = 0.05  # container create (runtime, mounts), after the image is available
    # lazy store CPU on a node's cores, 0 = not modelled (the defaults): every fetched unit is
    # decoded, hashed against its digest and written to the cache as it arrives (replacing the
    # decode on first read), and every fetched TOC is parsed (lazy and partial)
    lazy_verify_s_per_byte: float = 0.0  # per decoded byte of a fetched unit
    lazy_verify_s_per_unit: float = 0.0  # per fetched unit
    toc_parse_s_per_byte: float = 0.0  # per TOC byte fetched

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ParamsError(f"{f.name} (={v}) must be a finite number >= 0")
            if f.name.endswith("bytes_per_s") and v <= 0:
                raise ParamsError(f"{f.name} (={v}) must be > 0")
        if not 0 < self.bandwidth_efficiency <= 1:
            raise ParamsError(f"bandwidth_efficiency (={self.bandwidth_efficiency}) must be in (0, 1]")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def default_digest() -> str:
    canonical = json.dumps(dataclasses.asdict(CalibratedParams()), sort_keys=True, separators=(",", ":"))
    return _digest(canonical.encode())


def load_params(path: str | Path | None) -> tuple[CalibratedParams, str]:
    """The params and their digest; `None`/"" gives the defaults."""
    if not path:
        return CalibratedParams(), default_digest()
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ParamsError(f"cannot read params file {p}: {e.strerror}") from None
    try:
        raw = json.loads(data) if p.suffix == ".json" else tomllib.loads(data.decode())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ParamsError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'} ({e})") from None
    if isinstance(raw, dict) and isinstance(raw.get("params"), dict):
        raw = raw["params"]  # allow a [params] table next to fit metadata
    if not isinstance(raw, dict):
        raise ParamsError(f"{p}: expected a table of parameters")
    names = {f.name for f in dataclasses.fields(CalibratedParams)}
    kwargs: dict[str, float] = {}
    for k, v in raw.items():
        if k not in names:
            if isinstance(v, dict):
                continue  # metadata tables (fit errors, provenance) are allowed
            raise ParamsError(f"{p}: unknown parameter {k!r}")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ParamsError(f"{p}: {k} (={v!r}) must be a number")
        kwargs[k] = float(v)
    return CalibratedParams(**kwargs), _digest(data)
