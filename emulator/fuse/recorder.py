"""Recording what a program does through the mount: every open/read/stat/readlink/listdir.

Each operation is kept with its start and end (time.perf_counter, seconds). `to_trace()`
orders them by start and sets each op's think time to the gap between the end of the
previous operation and its start (0 when they overlap: concurrent readers). Thread-safe:
libfuse calls from several threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from startup.trace import Op, Trace, TraceOp


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedOp:
    op: Op
    path: str
    offset: int = 0
    length: int = 0  # bytes returned (reads), not bytes asked
    start_s: float
    end_s: float
    error: int = 0  # errno the operation failed with, 0 on success


class TraceRecorder:
    def __init__(self, *, include_errors: bool = False) -> None:
        self._ops: list[RecordedOp] = []
        self._lock = threading.Lock()
        self.include_errors = include_errors

    def now(self) -> float:
        return time.perf_counter()

    def add(self, op: RecordedOp) -> None:
        with self._lock:
            self._ops.append(op)

    @property
    def ops(self) -> list[RecordedOp]:
        with self._lock:
            return sorted(self._ops, key=lambda o: o.start_s)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)

    def to_trace(self, *, name: str = "recorded", image: str = "") -> Trace:
        out: list[TraceOp] = []
        prev_end: float | None = None
        for o in self.ops:
            if o.error and not self.include_errors:
                continue
            think = 0.0 if prev_end is None else max(0.0, o.start_s - prev_end)
            out.append(TraceOp(op=o.op, path=o.path, offset=o.offset, length=o.length, think_s=think))
            prev_end = o.end_s if prev_end is None else max(prev_end, o.end_s)
        return Trace.of(out, name=name, image=image)
