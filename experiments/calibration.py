"""The calibration fit: timed operations measured on this machine -> `FittedParams` with fit errors.

Measurements are named timed operations (`Measurement`, one row each, as the emulator's recorder
produces them plus the configured link they ran over). Each group is fitted by least squares on
*relative* residuals (rows weighted by 1/duration, so a 2 ms request counts as much as a 20 s
transfer). `FittedParams` has two layers:

- the simulator's `CalibratedParams` (sim/params.py), field for field, fitted in the form the
  simulator uses them:
      GET      d - rtt = request_overhead_s + nbytes / (bandwidth_efficiency * B)
      read     d = local_op_s + nbytes / local_read_bytes_per_s            (via inprocess)
               + fuse_op_s + fuse_byte_s * nbytes                          (via fuse, extra)
      decode   d = model_decode_call_s + nbytes_out / <codec>_decode_bytes_per_s
      extract  d = model_extract_file_s * files + nbytes / extract_bytes_per_s
      verify   d = lazy_verify_s_per_unit * units + lazy_verify_s_per_byte * nbytes_decoded
               (the lazy store's decode + sha256 + cache write of fetched units)
      toc      d = toc_parse_s_per_byte * nbytes_read   (parsing a fetched TOC)
  (`create_s` is not measured here and keeps its default);
- `model_*`: a finer GET model the validation uses to explain residuals:
      d = model_rtts_per_request * rtt + model_request_overhead_s
          + model_range_overhead_s * (ranges - 1) + nbytes / (efficiency(B) * B)
  with one efficiency per configured bandwidth level; `model_rtts_per_request` is fitted only
  when two or more RTT levels were measured (else 1), `model_range_overhead_s` only when the
  ranges per request vary (else 0).

A parameter whose group was not measured keeps its default and is marked `fitted = false`.
Every fitted parameter states its standard error, and its group's RMSE (s), R^2 and median
relative error. The params file format and its digest live in experiments/calibration_file.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from experiments.errors import CalibrationError

OPS = ("range_get", "blob_get", "read", "decode", "extract", "verify", "toc_parse")


@dataclass(frozen=True, kw_only=True, slots=True)
class Measurement:
    """One timed operation. `bandwidth_bytes_per_s`/`rtt_s` are the link as configured (shaped)."""

    op: str  # range_get | blob_get | read | decode | extract | verify | toc_parse
    duration_s: float
    nbytes: int  # body bytes (GET), bytes read, out of the decoder, written, verified, TOC bytes read
    count: int = 1  # ranges (GET), files written (extract), units (verify), TOC entries (toc_parse)
    bandwidth_bytes_per_s: float = 0.0
    rtt_s: float = 0.0
    via: str = ""  # read: "fuse" | "inprocess"
    codec: str = ""  # decode: "zstd" | "gzip"

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise CalibrationError(f"op (={self.op!r}) must be one of {', '.join(OPS)}")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise CalibrationError(f"duration_s (={self.duration_s}) must be a finite number > 0")
        if self.nbytes < 0 or self.count < 0:
            raise CalibrationError(f"nbytes (={self.nbytes}) and count (={self.count}) must be >= 0")
        if self.op in ("range_get", "blob_get") and not self.bandwidth_bytes_per_s > 0:
            raise CalibrationError(
                f"{self.op} needs bandwidth_bytes_per_s > 0 (got {self.bandwidth_bytes_per_s})")
        if self.rtt_s < 0:
            raise CalibrationError(f"rtt_s (={self.rtt_s}) must be >= 0")
        if self.op == "read" and self.via not in ("fuse", "inprocess"):
            raise CalibrationError(f"read via (={self.via!r}) must be 'fuse' or 'inprocess'")
        if self.op == "decode" and self.codec not in ("zstd", "gzip"):
            raise CalibrationError(f"decode codec (={self.codec!r}) must be 'zstd' or 'gzip'")

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Measurement:
        """From a CSV/dict row (strings are coerced; missing optional columns take defaults)."""
        kw: dict[str, object] = {}
        for f in fields(cls):
            if f.name in row and row[f.name] not in ("", None):
                v = row[f.name]
                kw[f.name] = (str(v) if f.type == "str" else int(float(str(v))) if f.type == "int"
                              else float(str(v)))
        return cls(**kw)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class FitStat:
    """How well one parameter is known: its group's fit quality and its own standard error."""

    fitted: bool  # False: not measured (default kept) or held fixed by the model
    stderr: float = math.nan  # standard error of the parameter, in its own unit
    n: int = 0  # measurements in the group
    rmse_s: float = math.nan  # root mean square residual of the group, seconds
    r2: float = math.nan  # coefficient of determination of the group (unweighted)
    rel_error_median: float = math.nan  # median |predicted - measured| / measured in the group
    at_bound: bool = False  # the estimate went negative and is held at 0 (or the default kept)


@dataclass(frozen=True, kw_only=True)
class FittedParams:
    """What the simulator needs from this machine. Defaults are sim/params.py's (not measured)."""

    # -- sim.params.CalibratedParams, field for field ---------------------------------------
    request_overhead_s: float = 0.0002
    bandwidth_efficiency: float = 0.95  # goodput / configured rate, pooled over levels
    fuse_op_s: float = 20e-6
    fuse_byte_s: float = 0.5e-9
    zstd_decode_bytes_per_s: float = 800e6
    gzip_decode_bytes_per_s: float = 250e6
    extract_bytes_per_s: float = 500e6
    local_read_bytes_per_s: float = 4e9
    local_op_s: float = 2e-6
    create_s: float = 0.05
    lazy_verify_s_per_byte: float = 0.0
    lazy_verify_s_per_unit: float = 0.0
    toc_parse_s_per_byte: float = 0.0
    # -- the finer model ---------------------------------------------------------------------
    model_request_overhead_s: float = 0.0002
    model_rtts_per_request: float = 1.0
    model_range_overhead_s: float = 0.0
    model_decode_call_s: float = 0.0
    model_extract_file_s: float = 0.0
    model_bandwidth_levels_bytes_per_s: tuple[float, ...] = ()
    model_bandwidth_efficiencies: tuple[float, ...] = ()  # per level above
    fit: Mapping[str, FitStat] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.model_bandwidth_levels_bytes_per_s) != len(self.model_bandwidth_efficiencies):
            raise CalibrationError("model_bandwidth_levels_bytes_per_s and model_bandwidth_efficiencies "
                                   "differ in length")
        for name in SCALARS:
            if not math.isfinite(getattr(self, name)):
                raise CalibrationError(f"{name} (={getattr(self, name)}) must be finite")
            if name.endswith("bytes_per_s") and not getattr(self, name) > 0:
                raise CalibrationError(f"{name} (={getattr(self, name)}) must be > 0")
        if not self.bandwidth_efficiency > 0:
            raise CalibrationError(f"bandwidth_efficiency (={self.bandwidth_efficiency}) must be > 0")

    def sim_params(self) -> dict[str, float]:
        """The simulator's CalibratedParams fields (pass as `CalibratedParams(**p.sim_params())`)."""
        return {name: float(getattr(self, name)) for name in SIM_FIELDS}

    def efficiency(self, bandwidth_bytes_per_s: float) -> float:
        """Finer model: efficiency at a link rate, interpolated in log(rate) and clamped; the
        pooled `bandwidth_efficiency` when no levels were measured."""
        levels, eff = self.model_bandwidth_levels_bytes_per_s, self.model_bandwidth_efficiencies
        if not levels:
            return self.bandwidth_efficiency
        return float(np.interp(math.log(bandwidth_bytes_per_s), np.log(levels), eff))

    def predict_get_s(self, nbytes: int, bandwidth_bytes_per_s: float, rtt_s: float) -> float:
        """One GET on an idle link as the simulator's params predict it."""
        return rtt_s + self.request_overhead_s + nbytes / (self.bandwidth_efficiency * bandwidth_bytes_per_s)

    def predict_get_model_s(self, nbytes: int, bandwidth_bytes_per_s: float, rtt_s: float,
                            ranges: int = 1) -> float:
        """One GET on an idle link as the finer model predicts it."""
        return (self.model_rtts_per_request * rtt_s + self.model_request_overhead_s
                + self.model_range_overhead_s * (ranges - 1)
                + nbytes / (self.efficiency(bandwidth_bytes_per_s) * bandwidth_bytes_per_s))


SIM_FIELDS = ("request_overhead_s", "bandwidth_efficiency", "fuse_op_s", "fuse_byte_s",
              "zstd_decode_bytes_per_s", "gzip_decode_bytes_per_s", "extract_bytes_per_s",
              "local_read_bytes_per_s", "local_op_s", "create_s", "lazy_verify_s_per_byte",
              "lazy_verify_s_per_unit", "toc_parse_s_per_byte")
OPTIONAL_FIELDS = ("lazy_verify_s_per_byte", "lazy_verify_s_per_unit", "toc_parse_s_per_byte")  # newer
MODEL_FIELDS = ("model_request_overhead_s", "model_rtts_per_request", "model_range_overhead_s",
                "model_decode_call_s", "model_extract_file_s")
SCALARS = SIM_FIELDS + MODEL_FIELDS


@dataclass(frozen=True, slots=True)
class _Group:
    coef: np.ndarray
    stderr: np.ndarray
    n: int
    rmse_s: float
    r2: float
    rel_error_median: float
    at_bound: frozenset[int] = frozenset()  # columns whose fit went negative, held at 0


def _wls(X: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None) -> _Group:
    """Least squares of y - offset on X with relative weights (1/y), with standard errors.

    Every coefficient is a cost, so none may be negative: a column whose estimate goes negative
    is held at 0 and the rest refitted (an active-set non-negative least squares), and the
    parameter is reported `at_bound`.
    """
    n, p = X.shape
    if n <= p:
        raise CalibrationError(f"{n} measurements cannot fit {p} parameters (need more than {p})")
    off = np.zeros(n) if offset is None else offset
    w = 1.0 / y
    Xw, yw = X * w[:, None], (y - off) * w
    active = list(range(p))
    while True:
        A = Xw[:, active]
        sol, _res, rank, _sv = np.linalg.lstsq(A, yw, rcond=None)
        if rank < len(active):
            raise CalibrationError(f"measurements do not determine the model (rank {rank} < {len(active)} "
                                   "parameters); vary the sizes measured")
        if sol.min() >= 0:
            break
        active.pop(int(np.argmin(sol)))
        if not active:
            raise CalibrationError("every coefficient fitted negative: the measurements are noise")
    coef = np.zeros(p)
    coef[active] = sol
    resid_w = yw - Xw @ coef
    s2 = float(resid_w @ resid_w) / (n - len(active))
    stderr = np.full(p, math.nan)
    stderr[active] = np.sqrt(np.maximum(np.diag(s2 * np.linalg.inv(A.T @ A)), 0.0))
    resid = y - (X @ coef + off)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return _Group(coef=coef, stderr=stderr, n=n, rmse_s=float(np.sqrt((resid**2).mean())),
                  r2=1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else math.nan,
                  rel_error_median=float(np.median(np.abs(resid) / y)),
                  at_bound=frozenset(set(range(p)) - set(active)))


def _stat(g: _Group, i: int, stderr: float | None = None) -> FitStat:
    return FitStat(fitted=True, stderr=float(g.stderr[i]) if stderr is None else stderr, n=g.n,
                   rmse_s=g.rmse_s, r2=g.r2, rel_error_median=g.rel_error_median, at_bound=i in g.at_bound)


def _throughput(g: _Group, i: int, name: str, out: dict[str, object], stats: dict[str, FitStat]) -> None:
    """A throughput from a time-per-byte coefficient (stderr by the delta method). A per-byte cost
    below the measurements' resolution (held at 0) keeps the default throughput, flagged at_bound."""
    inv = float(g.coef[i])
    if inv > 0:
        out[name], stats[name] = 1.0 / inv, _stat(g, i, float(g.stderr[i]) / inv**2)
    else:
        stats[name] = _stat(g, i)


def _fit_gets(ms: Sequence[Measurement], out: dict[str, object], stats: dict[str, FitStat]) -> None:
    y = np.array([m.duration_s for m in ms])
    rtt = np.array([m.rtt_s for m in ms])
    # the simulator's form: one RTT, one overhead, one pooled efficiency
    g = _wls(np.array([[1.0, m.nbytes / m.bandwidth_bytes_per_s] for m in ms]), y, rtt)
    if g.coef[1] <= 0:
        raise CalibrationError("fitted transfer time per byte is not positive; measure larger transfers")
    out["request_overhead_s"], stats["request_overhead_s"] = float(g.coef[0]), _stat(g, 0)
    out["bandwidth_efficiency"] = 1.0 / float(g.coef[1])
    stats["bandwidth_efficiency"] = _stat(g, 1, float(g.stderr[1]) / float(g.coef[1]) ** 2)  # d(1/x)
    # the finer form
    levels = sorted({m.bandwidth_bytes_per_s for m in ms})
    cols = ["model_request_overhead_s"] + (["model_rtts_per_request"] if len({*rtt}) > 1 else []) \
        + (["model_range_overhead_s"] if len({m.count for m in ms}) > 1 else [])
    X = np.zeros((len(ms), len(cols) + len(levels)))
    for r, m in enumerate(ms):
        row = {"model_request_overhead_s": 1.0, "model_rtts_per_request": m.rtt_s,
               "model_range_overhead_s": m.count - 1.0}
        X[r, : len(cols)] = [row[c] for c in cols]
        X[r, len(cols) + levels.index(m.bandwidth_bytes_per_s)] = m.nbytes / m.bandwidth_bytes_per_s
    g = _wls(X, y, None if "model_rtts_per_request" in cols else rtt)
    for i, c in enumerate(cols):
        out[c], stats[c] = float(g.coef[i]), _stat(g, i)
    inv = g.coef[len(cols):]
    if np.any(inv <= 0):
        raise CalibrationError("fitted transfer time per byte is not positive; measure larger transfers")
    eff = 1.0 / inv
    out["model_bandwidth_levels_bytes_per_s"] = tuple(float(b) for b in levels)
    out["model_bandwidth_efficiencies"] = tuple(float(e) for e in eff)
    for j, b in enumerate(levels):
        k = len(cols) + j
        stats[f"model_bandwidth_efficiency@{b:.6g}"] = _stat(g, k, float(g.stderr[k] * eff[j] ** 2))


def _fit_reads(ms: Sequence[Measurement], out: dict[str, object], stats: dict[str, FitStat]) -> None:
    if {m.via for m in ms} != {"fuse", "inprocess"}:
        raise CalibrationError("FUSE cost needs the same reads measured both via fuse and inprocess")
    X = np.array([[1.0, m.nbytes, m.via == "fuse", (m.via == "fuse") * m.nbytes] for m in ms], dtype=float)
    g = _wls(X, np.array([m.duration_s for m in ms]))
    out["local_op_s"], stats["local_op_s"] = float(g.coef[0]), _stat(g, 0)
    _throughput(g, 1, "local_read_bytes_per_s", out, stats)
    out["fuse_op_s"], stats["fuse_op_s"] = float(g.coef[2]), _stat(g, 2)
    out["fuse_byte_s"], stats["fuse_byte_s"] = float(g.coef[3]), _stat(g, 3)


def _fit_decode(ms: Sequence[Measurement], out: dict[str, object], stats: dict[str, FitStat]) -> None:
    codecs = sorted({m.codec for m in ms})
    X = np.zeros((len(ms), 1 + len(codecs)))
    for r, m in enumerate(ms):
        X[r, 0] = 1.0
        X[r, 1 + codecs.index(m.codec)] = m.nbytes
    g = _wls(X, np.array([m.duration_s for m in ms]))
    out["model_decode_call_s"], stats["model_decode_call_s"] = float(g.coef[0]), _stat(g, 0)
    for j, c in enumerate(codecs):
        _throughput(g, 1 + j, f"{c}_decode_bytes_per_s", out, stats)


def _fit_extract(ms: Sequence[Measurement], out: dict[str, object], stats: dict[str, FitStat]) -> None:
    X = np.array([[m.count, m.nbytes] for m in ms], dtype=float)
    g = _wls(X, np.array([m.duration_s for m in ms]))
    out["model_extract_file_s"], stats["model_extract_file_s"] = float(g.coef[0]), _stat(g, 0)
    _throughput(g, 1, "extract_bytes_per_s", out, stats)


def _fit_verify(ms: Sequence[Measurement], out: dict[str, object], stats: dict[str, FitStat]) -> None:
    g = _wls(np.array([[m.count, m.nbytes] for m in ms], dtype=float), np.array([m.duration_s for m in ms]))
    out["lazy_verify_s_per_unit"], stats["lazy_verify_s_per_unit"] = float(g.coef[0]), _stat(g, 0)
    out["lazy_verify_s_per_byte"], stats["lazy_verify_s_per_byte"] = float(g.coef[1]), _stat(g, 1)


def _fit_toc(ms: Sequence[Measurement], out: dict[str, object], stats: dict[str, FitStat]) -> None:
    g = _wls(np.array([[m.nbytes] for m in ms], dtype=float), np.array([m.duration_s for m in ms]))
    out["toc_parse_s_per_byte"], stats["toc_parse_s_per_byte"] = float(g.coef[0]), _stat(g, 0)


def fit_params(measurements: Iterable[Measurement], defaults: FittedParams | None = None) -> FittedParams:
    """Fit every group that was measured; the others keep `defaults` (marked fitted = false)."""
    base = defaults or FittedParams()
    ms = list(measurements)
    if not ms:
        raise CalibrationError("no measurements to fit")
    out: dict[str, object] = {}
    stats: dict[str, FitStat] = {}
    gets = [m for m in ms if m.op in ("range_get", "blob_get")]
    for group, fitter in ((gets, _fit_gets), ([m for m in ms if m.op == "read"], _fit_reads),
                          ([m for m in ms if m.op == "decode"], _fit_decode),
                          ([m for m in ms if m.op == "extract"], _fit_extract),
                          ([m for m in ms if m.op == "verify"], _fit_verify),
                          ([m for m in ms if m.op == "toc_parse"], _fit_toc)):
        if group:
            fitter(group, out, stats)
    for name in SCALARS:
        stats.setdefault(name, FitStat(fitted=False))
        out.setdefault(name, getattr(base, name))
    out.setdefault("model_bandwidth_levels_bytes_per_s", base.model_bandwidth_levels_bytes_per_s)
    out.setdefault("model_bandwidth_efficiencies", base.model_bandwidth_efficiencies)
    return FittedParams(**out, fit=stats)  # type: ignore[arg-type]
