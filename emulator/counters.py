"""Per-layer and per-node counters of the lazy store (what moved, why, and how fast reads were).

Purposes: `on_demand` (a reader waited for it), `readahead` (fetched ahead of a sequential
reader, `emulator.readahead`), `prefetch` (before ready), `background` (low-priority fill), `toc`
(TOC and footer). Byte counts are response-body bytes that crossed the link (including merged
gap bytes), so they add up to what the registry sent.

`view_ops` / `view_cpu_s`: file-system operations (stat, listdir, readlink, xattrs, read) the
store served, and the CPU time spent serving them in the calling thread (`time.thread_time`,
fetch waits excluded: a read's network wait costs no CPU; decode counts where it runs). They
are what the start would have cost in FUSE operations and daemon CPU had it gone through a
mount; `emulator.fuse` measures the mounted case itself.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum

# Read latency histogram bucket upper bounds, seconds (last bucket is +inf).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    1e-5,
    3e-5,
    1e-4,
    3e-4,
    1e-3,
    3e-3,
    1e-2,
    3e-2,
    0.1,
    0.3,
    1.0,
    3.0,
    10.0,
)


class Purpose(StrEnum):
    ON_DEMAND = "on_demand"
    READAHEAD = "readahead"
    PREFETCH = "prefetch"
    BACKGROUND = "background"
    TOC = "toc"


# The integer counters that merge() adds and minus() subtracts field by field.
_COUNT_FIELDS = (
    "bytes_on_demand",
    "bytes_readahead",
    "bytes_prefetch",
    "bytes_background",
    "bytes_toc",
    "requests",
    "ranges",
    "cache_hits",
    "cache_misses",
    "reads",
    "view_ops",
)

_BYTES_FIELD = {p: f"bytes_{p.value}" for p in Purpose}


@dataclass(slots=True)
class Counters:
    bytes_on_demand: int = 0
    bytes_readahead: int = 0
    bytes_prefetch: int = 0
    bytes_background: int = 0
    bytes_toc: int = 0
    requests: int = 0
    ranges: int = 0
    cache_hits: int = 0  # verification units (chunks/files) served from a cache
    cache_misses: int = 0  # units that had to be fetched
    reads: int = 0
    view_ops: int = 0
    view_cpu_s: float = 0.0
    read_latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    read_latency_sum_s: float = 0.0

    def add_transfer(self, purpose: Purpose, nbytes: int, requests: int, ranges: int) -> None:
        attr = _BYTES_FIELD[purpose]
        setattr(self, attr, getattr(self, attr) + nbytes)
        self.requests += requests
        self.ranges += ranges

    def observe_op(self, cpu_s: float) -> None:
        self.view_ops += 1
        self.view_cpu_s += cpu_s

    def observe_read(self, latency_s: float) -> None:
        self.reads += 1
        self.read_latency_sum_s += latency_s
        self.read_latency_counts[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1

    @property
    def bytes_total(self) -> int:
        moved = self.bytes_on_demand + self.bytes_readahead + self.bytes_prefetch
        return moved + self.bytes_background + self.bytes_toc

    def merge(self, other: Counters) -> None:
        for name in _COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.view_cpu_s += other.view_cpu_s
        self.read_latency_sum_s += other.read_latency_sum_s
        self.read_latency_counts = [
            a + b for a, b in zip(self.read_latency_counts, other.read_latency_counts, strict=True)
        ]

    def copy(self) -> Counters:
        c = Counters()
        c.merge(self)
        return c

    def minus(self, before: Counters) -> Counters:
        """The difference `self - before` (what happened between two snapshots)."""
        d = Counters()
        d.merge(self)
        for name in _COUNT_FIELDS:
            setattr(d, name, getattr(self, name) - getattr(before, name))
        d.view_cpu_s -= before.view_cpu_s
        d.read_latency_sum_s -= before.read_latency_sum_s
        d.read_latency_counts = [
            a - b for a, b in zip(self.read_latency_counts, before.read_latency_counts, strict=True)
        ]
        return d


class CounterSet:
    """Counters per layer digest, summed on demand into a node total; thread-safe snapshots."""

    def __init__(self) -> None:
        self._by_layer: dict[str, Counters] = {}
        self._lock = threading.Lock()

    def layer(self, digest: str) -> Counters:
        with self._lock:
            return self._by_layer.setdefault(digest, Counters())

    def layers(self) -> dict[str, Counters]:
        with self._lock:
            return {k: v.copy() for k, v in self._by_layer.items()}

    def total(self, digests: Iterable[str] | None = None) -> Counters:
        t = Counters()
        with self._lock:
            for k, v in self._by_layer.items():
                if digests is None or k in digests:
                    t.merge(v)
        return t


# The counters of the pod start running in the current task (set by `emulator.modes`): stores add
# every transfer, hit and miss to it too, so concurrent pods sharing a node's store each get
# what their own reads (and the prefetch/background tasks they started) caused.
POD_COUNTERS: ContextVar[Counters | None] = ContextVar("lazylab_pod_counters", default=None)
