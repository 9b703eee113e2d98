"""Replaying a workload `Trace` against a view; ready = the end of the trace.

Each operation waits its `think_s` first (compute time), then runs. A trace may probe paths
that do not exist (a shell searching PATH): ENOENT/ENOTDIR/EINVAL/ELOOP answers are part of
the workload and counted; EIO (a fetch or verification that failed after retries) fails the
replay with `ReplayError`. Two entry points: `replay_async` for async views on the caller's
loop (`LazyStore`, `RootView`), `replay` for any blocking `FileSystemView` (FUSE-free use of
`LazyView`, or a view over a FUSE mount).
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from emulator.errors import EmulatorError
from emulator.view import FileSystemView, Stat
from startup.trace import Op, Trace, TraceOp

WORKLOAD_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EINVAL, errno.ELOOP, errno.EISDIR})


class ReplayError(EmulatorError):
    """An operation of the trace failed for a reason other than the workload's own probing."""


class AsyncView(Protocol):
    async def stat(self, path: str) -> Stat: ...

    async def listdir(self, path: str) -> list[str]: ...

    async def readlink(self, path: str) -> str: ...

    async def read(self, path: str, offset: int, length: int) -> bytes: ...


@dataclass(slots=True)
class ReplayResult:
    ops: int = 0
    bytes_read: int = 0
    missing: int = 0  # operations answered ENOENT & co (part of the workload)
    think_s: float = 0.0
    wall_s: float = 0.0
    digest: str = ""  # sha256 over every byte read, in order (equal across modes = same content)


def _call(view: Any, op: TraceOp) -> Any:
    if op.op is Op.READ:
        return view.read(op.path, op.offset, op.length)
    if op.op is Op.LISTDIR:
        return view.listdir(op.path)
    if op.op is Op.READLINK:
        return view.readlink(op.path)
    return view.stat(op.path)  # stat and open


def _account(result: ReplayResult, op: TraceOp, value: object, hasher: Any) -> None:
    result.ops += 1
    if op.op is Op.READ and isinstance(value, bytes):
        result.bytes_read += len(value)
        hasher.update(value)


def _failed(result: ReplayResult, op: TraceOp, e: OSError) -> None:
    if e.errno in WORKLOAD_ERRNOS:
        result.ops += 1
        result.missing += 1
        return
    raise ReplayError(f"{op.op.value} {op.path}: {e.strerror or e}") from e


class ThinkClock:
    """Think time paid against a running account, so a late wake-up is not charged twice.

    A timer wakes at the earliest a little after its deadline (epoll rounds timeouts up to the
    millisecond; a busy event loop adds its own delay), and a trace has hundreds of sub-millisecond
    thinks: sleeping each one separately overshoots by ~1 ms apiece (measured: the busybox trace's
    0.144 s of think took 0.705 s of asyncio.sleep; the python trace's took 2.1 s more than its
    think while a background fetch kept the loop busy). Instead the thinks owed are summed and slept
    once they reach `min_sleep_s`, and what a sleep overshot is credited to the next thinks; the
    trace's total think time is then paid to within one wake-up, whatever the timer resolution.
    """

    def __init__(self, min_sleep_s: float = 0.002) -> None:
        self.min_sleep_s = min_sleep_s
        self.owed_s = 0.0

    def owe(self, think_s: float) -> float:
        """Add `think_s`; returns how long to sleep now (0: keep owing)."""
        self.owed_s += think_s
        return self.owed_s if self.owed_s >= self.min_sleep_s else 0.0

    def slept(self, duration_s: float) -> None:
        self.owed_s -= duration_s  # negative: overshoot credited to later thinks


async def replay_async(
    view: AsyncView, trace: Trace, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> ReplayResult:
    import hashlib

    h = hashlib.sha256()
    result = ReplayResult()
    start = time.perf_counter()
    clock = ThinkClock()
    for op in trace:
        if op.think_s > 0:
            result.think_s += op.think_s
            due = clock.owe(op.think_s)
            if due > 0:
                t0 = time.perf_counter()
                await sleep(due)
                clock.slept(time.perf_counter() - t0)
        try:
            value = await _call(view, op)
        except OSError as e:
            _failed(result, op, e)
            continue
        _account(result, op, value, h)
    if clock.owed_s > 0:
        await sleep(clock.owed_s)
    result.wall_s = time.perf_counter() - start
    result.digest = "sha256:" + h.hexdigest()
    return result


def replay(
    view: FileSystemView, trace: Trace, *, sleep: Callable[[float], None] = time.sleep
) -> ReplayResult:
    import hashlib

    h = hashlib.sha256()
    result = ReplayResult()
    start = time.perf_counter()
    clock = ThinkClock()
    for op in trace:
        if op.think_s > 0:
            result.think_s += op.think_s
            due = clock.owe(op.think_s)
            if due > 0:
                t0 = time.perf_counter()
                sleep(due)
                clock.slept(time.perf_counter() - t0)
        try:
            value = _call(view, op)
        except OSError as e:
            _failed(result, op, e)
            continue
        _account(result, op, value, h)
    if clock.owed_s > 0:
        sleep(clock.owed_s)
    result.wall_s = time.perf_counter() - start
    result.digest = "sha256:" + h.hexdigest()
    return result
