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
    """Mutable holder so the body of `timed` can set nbytes/count once it knows them; the context
    manager itself (a plain class: a generator-based one costs a few microseconds per use, and a
    cold read goes through two)."""

    __slots__ = ("_op", "_recorder", "_start", "count", "layer", "nbytes")

    def __init__(self, recorder: Recorder, op: str, nbytes: int, count: int, layer: str) -> None:
        self._recorder, self._op = recorder, op
        self.nbytes, self.count, self.layer = nbytes, count, layer
        self._start = 0.0

    def __enter__(self) -> _Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self._recorder.record(
                TimedOp(
                    op=self._op,
                    start_s=self._start,
                    duration_s=time.perf_counter() - self._start,
                    nbytes=self.nbytes,
                    count=self.count,
                    layer=self.layer,
                )
            )


class _NullTimer:
    """What `timed` gives for a NullRecorder: nothing to time or build."""

    __slots__ = ("count", "layer", "nbytes")
    count: int
    layer: str
    nbytes: int

    def __enter__(self) -> _NullTimer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NULL_TIMER = _NullTimer()  # shared: what a body writes into it is never read


def timed(
    recorder: Recorder, op: str, *, nbytes: int = 0, count: int = 1, layer: str = ""
) -> _Timer | _NullTimer:
    """Time the `with` body and record it (only if it completes without an exception)."""
    if type(recorder) is NullRecorder:
        return _NULL_TIMER
    return _Timer(recorder, op, nbytes, count, layer)
