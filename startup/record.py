"""`StartupRecord`: one container start, as predicted (sim) or measured (emulator).

All `*_s` timestamps are seconds on the scenario's clock (simulated time, or wall time since
the run started); a phase that did not happen (e.g. error before ready) is NaN. Metrics are
pure functions of these fields — see docs/metrics.md.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from startup.modes import PullMode

NAN = float("nan")


@dataclass(frozen=True, kw_only=True, slots=True)
class StartupRecord:
    engine: str  # "sim" or "emulator"
    scenario: str
    seed: int
    node: str
    pod: str
    image: str
    mode: PullMode
    submitted_s: float  # pod created (scheduled onto the node)
    resolved_s: float = NAN  # manifest and config resolved
    pulled_s: float = NAN  # image "pulled": all layers local (full/partial) or mounted (lazy)
    created_s: float = NAN  # container created (lazy-prefetch: prefetch complete)
    ready_s: float = NAN  # workload trace finished
    bytes_manifest: int = 0  # manifests + configs
    bytes_toc: int = 0  # TOCs (and tar-splits, footers)
    bytes_layers: int = 0  # full/partial pull layer bytes
    bytes_on_demand: int = 0  # lazy reads that missed the cache
    bytes_prefetch: int = 0
    bytes_background: int = 0
    bytes_reused: int = 0  # partial: satisfied from chunks already on the node
    requests: int = 0  # HTTP requests to the registry
    ranges: int = 0  # byte ranges requested
    cache_hits: int = 0
    cache_misses: int = 0
    fuse_ops: int = 0
    fuse_cpu_s: float = 0.0
    error: str = ""

    def __post_init__(self) -> None:
        if self.engine not in ("sim", "emulator"):
            raise ValueError(f"engine (={self.engine!r}) must be 'sim' or 'emulator'")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("bytes_") or f.name in ("requests", "ranges", "cache_hits", "cache_misses"):
                if v < 0:
                    raise ValueError(f"{f.name} (={v}) must be >= 0")

    # -- derived metrics (docs/metrics.md) ---------------------------------------------------
    @property
    def ok(self) -> bool:
        return not self.error and not math.isnan(self.ready_s)

    @property
    def pull_s(self) -> float:
        """Time to image pulled = pulled - submitted."""
        return self.pulled_s - self.submitted_s

    @property
    def create_s(self) -> float:
        """Create phase = created - pulled."""
        return self.created_s - self.pulled_s

    @property
    def run_s(self) -> float:
        """Run phase until ready = ready - created."""
        return self.ready_s - self.created_s

    @property
    def time_to_ready_s(self) -> float:
        """Time to ready = ready - submitted."""
        return self.ready_s - self.submitted_s

    @property
    def bytes_fetched(self) -> int:
        """Everything this start moved from the registry."""
        return (
            self.bytes_manifest
            + self.bytes_toc
            + self.bytes_layers
            + self.bytes_on_demand
            + self.bytes_prefetch
            + self.bytes_background
        )


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StartupRecord))


def write_csv(records: Iterable[StartupRecord], path: str | Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=RECORD_FIELDS)
        w.writeheader()
        for r in records:
            row = asdict(r)
            row["mode"] = r.mode.value
            w.writerow(row)


def read_csv(path: str | Path) -> list[StartupRecord]:
    out: list[StartupRecord] = []
    types = {f.name: f.type for f in fields(StartupRecord)}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            kw: dict[str, object] = {}
            for k, v in row.items():
                t = str(types[k])
                if k == "mode":
                    kw[k] = PullMode(v)
                elif t == "int":
                    kw[k] = int(v)
                elif t == "float":
                    kw[k] = float(v)
                else:
                    kw[k] = v
            out.append(StartupRecord(**kw))  # type: ignore[arg-type]
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of the finite values; NaN if none."""
    xs = sorted(v for v in values if not math.isnan(v))
    if not xs:
        return NAN
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
