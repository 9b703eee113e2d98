"""The quickstart (`lazylab demo`): one real image, the four pull modes, emulated and simulated.

A small real image (`experiments.realimages`: python or busybox, zstd:chunked, built on first
use and cached) is started once per mode by each engine on the same scenario — one node, a link
of `link_bytes_per_s` with `rtt_s` to the registry, the image's recorded startup trace:

- emulated: registry_mock in its own process over a shaped loopback link, the emulator pulling
  for real (full, partial, lazy, lazy-prefetch), replaying the trace against what it pulled;
- simulated: the simulator with the committed calibration (experiments/params/default.toml).

`run_quickstart` returns one `ModeComparison` per mode (the two `StartupRecord`s side by side)
and `plot_quickstart` draws them (time to ready per mode, split into pull / create / run, each
engine's bar beside the other's). The scenario is `experiments.validate`'s, so the demo is one
point of the validation experiment.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from experiments.calibration_file import load_calibration
from experiments.config import with_overrides
from experiments.engines import engine_effective
from experiments.errors import ConfigError
from experiments.validate import base_config
from experiments.validate import run as run_validation_point
from startup.record import StartupRecord

MODES = ("full", "partial", "lazy", "lazy-prefetch")
IMAGES = {"python": "python_import_json_ssl", "busybox": "busybox_shell_script"}  # image -> its trace


@dataclass(frozen=True, kw_only=True)
class QuickstartSpec:
    image: str = "python"
    link_bytes_per_s: float = 12.5e6  # 100 Mbit/s
    rtt_s: float = 0.02
    modes: tuple[str, ...] = MODES
    seed: int = 0
    params_file: str | None = None  # None: the committed calibration

    def __post_init__(self) -> None:
        if self.image not in IMAGES:
            raise ConfigError(f"image (={self.image!r}) must be one of {', '.join(IMAGES)}")
        if not (math.isfinite(self.link_bytes_per_s) and self.link_bytes_per_s > 0):
            raise ConfigError(f"link_bytes_per_s (={self.link_bytes_per_s}) must be > 0")
        if not (math.isfinite(self.rtt_s) and 0 <= self.rtt_s <= 10):
            raise ConfigError(f"rtt_s (={self.rtt_s}) must be in [0, 10]")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ConfigError(f"modes (={list(self.modes)}) must be a non-empty subset of {', '.join(MODES)}")

    def config(self, mode: str) -> dict[str, Any]:
        base = base_config(self.image, IMAGES[self.image])
        return engine_effective(with_overrides(base, {
            "name": "quickstart", "mode": mode,
            "cluster.link_bandwidth_bytes_per_s": self.link_bytes_per_s, "cluster.rtt_s": self.rtt_s,
        }))


@dataclass(frozen=True, kw_only=True)
class ModeComparison:
    mode: str
    emulated: StartupRecord
    simulated: StartupRecord
    emulator_wall_s: float  # how long the emulated start took to run

    def error(self, metric: str) -> float:
        """predicted / measured - 1 for a StartupRecord property (NaN when undefined)."""
        p, m = float(getattr(self.simulated, metric)), float(getattr(self.emulated, metric))
        return p / m - 1 if m and not (math.isnan(p) or math.isnan(m)) else math.nan


@dataclass(frozen=True, kw_only=True)
class QuickstartResult:
    spec: QuickstartSpec
    rows: tuple[ModeComparison, ...]
    calibration: str  # the params file's path and digest

    @property
    def median_abs_error_ready(self) -> float:
        errs = sorted(abs(r.error("time_to_ready_s")) for r in self.rows)
        errs = [e for e in errs if not math.isnan(e)]
        n = len(errs)
        return (errs[n // 2] + errs[(n - 1) // 2]) / 2 if n else math.nan

    def ranking(self, engine: str) -> list[str]:
        attr = "emulated" if engine == "emulator" else "simulated"
        return [r.mode for r in sorted(self.rows, key=lambda r: getattr(r, attr).time_to_ready_s)]

    def disagreements(self, tie: float = 0.02) -> list[tuple[str, str]]:
        """Mode pairs the engines order oppositely; pairs within `tie` (relative) in either engine
        are ties and cannot disagree (as `experiments.compare.ranking_agreement`)."""
        out = []
        for i, a in enumerate(self.rows):
            for b in self.rows[i + 1:]:
                dp = _rel(a.simulated.time_to_ready_s, b.simulated.time_to_ready_s)
                dm = _rel(a.emulated.time_to_ready_s, b.emulated.time_to_ready_s)
                if abs(dp) > tie and abs(dm) > tie and (dp > 0) != (dm > 0):
                    out.append((a.mode, b.mode))
        return out


def _rel(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return (a - b) / scale if scale > 0 and not (math.isnan(a) or math.isnan(b)) else 0.0


def run_quickstart(spec: QuickstartSpec, *, on_step: Callable[[str], None] | None = None) -> QuickstartResult:
    """Start the image once per mode in each engine (the emulator for real, one at a time)."""
    cal = load_calibration(spec.params_file)
    rows = []
    for mode in spec.modes:
        config = spec.config(mode)
        records: dict[str, StartupRecord] = {}
        walls: dict[str, float] = {}
        for engine in ("emulator", "sim"):
            if on_step is not None:
                on_step(f"{mode}: {'emulating' if engine == 'emulator' else 'simulating'}")
            t0 = time.perf_counter()
            out = run_validation_point({**config, "engine": engine}, spec.seed, cal)
            walls[engine] = time.perf_counter() - t0
            if len(out.records) != 1:
                raise ConfigError(f"{engine} returned {len(out.records)} records for one pod")
            records[engine] = out.records[0]
        rows.append(ModeComparison(mode=mode, emulated=records["emulator"], simulated=records["sim"],
                                   emulator_wall_s=walls["emulator"]))
    where = f"{cal.path or 'built-in defaults'} ({cal.digest[:19]})"
    return QuickstartResult(spec=spec, rows=tuple(rows), calibration=where)


PHASES = (("pull", "pull_s", "#4c72b0"), ("create", "create_s", "#dd8452"), ("run", "run_s", "#55a868"))


def plot_quickstart(result: QuickstartResult) -> Figure:
    """Time to ready per mode, emulated and simulated bars side by side, split into phases."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    width = 0.38
    for i, row in enumerate(result.rows):
        for dx, rec, hatch in ((-width / 2, row.emulated, ""), (width / 2, row.simulated, "//")):
            bottom = 0.0
            for label, attr, color in PHASES:
                v = float(getattr(rec, attr))
                v = 0.0 if math.isnan(v) else v
                first = i == 0 and dx < 0
                ax.bar(i + dx, v, width, bottom=bottom, color=color, hatch=hatch, edgecolor="white",
                       label=label if first else None)
                bottom += v
            ax.text(i + dx, bottom, f"{bottom:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(result.rows)), [r.mode for r in result.rows])
    ax.set_ylabel("time to ready (s)")
    s = result.spec
    ax.set_title(f"{s.image} image, {s.link_bytes_per_s * 8 / 1e6:g} Mbit/s, RTT {s.rtt_s * 1e3:g} ms: "
                 "emulated (solid) vs simulated (hatched)", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def comparison_rows(result: QuickstartResult) -> list[tuple[str, ...]]:
    """Table cells per mode: pull, create, ready (emulated / simulated), ready error, MB fetched."""

    def s(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{v:.2f}"

    def pct(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{v:+.0%}"

    out: list[tuple[str, ...]] = []
    for r in result.rows:
        e, p = r.emulated, r.simulated
        out.append((r.mode, s(e.pull_s), s(p.pull_s), s(e.create_s), s(p.create_s), s(e.time_to_ready_s),
                    s(p.time_to_ready_s), pct(r.error("time_to_ready_s")), _mb(e), _mb(p),
                    e.error or p.error))
    return out


def _mb(r: StartupRecord) -> str:
    """MB fetched without background fetch (which the emulator stops when its run ends)."""
    return f"{(r.bytes_fetched - r.bytes_background) / 1e6:.1f}"


COLUMNS = ("mode", "pull emu", "pull sim", "create emu", "create sim", "ready emu", "ready sim",
           "ready error", "MB emu", "MB sim", "error")
NOTES = ("times in seconds; ready error = simulated / emulated - 1; MB: fetched from the registry, "
         "background fetch left out (the emulator stops it when the run ends)")


def summary_lines(result: QuickstartResult) -> Sequence[str]:
    emu, sim = result.ranking("emulator"), result.ranking("sim")
    return (
        f"median |error| of time to ready: {result.median_abs_error_ready:.0%}",
        "fastest first — measured: " + " < ".join(emu) + "; predicted: " + " < ".join(sim)
        + (" (same order" + (", ties within 2% aside)" if emu != sim else ")") if not result.disagreements()
           else " (order differs: " + ", ".join(f"{a}/{b}" for a, b in result.disagreements()) + ")"),
        f"calibration: {result.calibration}",
    )
