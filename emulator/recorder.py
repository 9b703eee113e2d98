"""Timed operations, recorded into an injected `Recorder` (never a global).

The emulator times what the calibration experiment fits: `range_get` (one HTTP request for
byte ranges: wall time from send to last body byte, bytes of body, ranges asked), `blob_get`
(a whole-blob GET), `decode` (decompressing one chunk or blob: bytes out), `extract`
(writing files of a full/partial pull: bytes written), `toc_fetch` (fetch+verify+parse of one
TOC), `verify` (hashing). Callers pass a recorder down; the default records nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedOp:
    op: str  # range_get | blob_get | decode | extract | toc_fetch | verify | fuse_read | ...
    start_s: float  # time.perf_counter() at start
    duration_s: float
    nbytes: int = 0
    count: int = 1  # e.g. ranges in one request
    layer: str = ""  # layer digest, when the operation belongs to one


class Recorder(Protocol):
    def record(self, op: TimedOp) -> None: ...


class NullRecorder:
    """Records nothing (the default)."""

    def record(self, op: TimedOp) -> None:
        return None


class ListRecorder:
    """Keeps every TimedOp in memory, in completion order; thread-safe."""

    def __init__(self) -> None:
        self._ops: list[TimedOp] = []
        self._lock = threading.Lock()

    def record(self, op: TimedOp) -> None:
        with self._lock:
            self._ops.append(op)

    @property
    def ops(self) -> list[TimedOp]:
        with self._lock:
            return list(self._ops)

    def of(self, op: str) -> list[TimedOp]:
        return [o for o in self.ops if o.op == op]


class _Timer:
    """Mutable holder so the body of `timed` can set nbytes/count once it knows them."""

    __slots__ = ("count", "layer", "nbytes")

    def __init__(self, nbytes: int, count: int, layer: str) -> None:
        self.nbytes, self.count, self.layer = nbytes, count, layer


@contextmanager
def timed(
    recorder: Recorder, op: str, *, nbytes: int = 0, count: int = 1, layer: str = ""
) -> Iterator[_Timer]:
    """Time the `with` body and record it (only if it completes without an exception)."""
    t = _Timer(nbytes, count, layer)
    start = time.perf_counter()
    yield t
    recorder.record(
        TimedOp(
            op=op,
            start_s=start,
            duration_s=time.perf_counter() - start,
            nbytes=t.nbytes,
            count=t.count,
            layer=t.layer,
        )
    )
