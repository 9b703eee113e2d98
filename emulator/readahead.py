"""Readahead for sequential readers of the lazy store: detect per file, fetch ahead, bounded.

A read is sequential when it starts where the previous read of the same file ended (a first read
at offset 0 counts too, as in Linux's initial readahead). Each sequential read sets the file's
window to twice the previous one (starting at twice the read's length), capped at
`ReadaheadPolicy.max_bytes`, and the store fetches the verification units of
`[reader end, reader end + window)` in fetches of at most `request_bytes` file bytes, at most
`max_inflight` at once per file. So while the reader consumes one piece the next is on the wire
and the one after is being decoded: the link never idles for a round trip or a decode. A
non-sequential read resets the file's window (fetches in flight complete). Readahead goes
through `LazyStore.load`, so a reader that arrives first shares the fetch (a cache hit for it),
and its bytes count under `Purpose.READAHEAD`. A failed readahead is dropped: the reader's own
read fetches again and reports its own error.

Off unless `max_bytes > 0`. Emulated starts (`emulator.modes`) keep it off, because the simulator
has no readahead; the blocking view (`lazylab lazy mount`, `lazy cat`) turns it on.
All methods run on the store's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emulator.counters import Purpose
from imageformat.byterange import ByteRange
from imageformat.toc import TocEntry

if TYPE_CHECKING:
    from emulator.store import LazyStore
    from emulator.units import Unit

MAX_TRACKED_FILES = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadaheadPolicy:
    max_bytes: int = 0  # how far past a sequential reader to fetch (0: no readahead; the view: 16 MiB)
    request_bytes: int = 2 << 20  # file bytes per readahead fetch
    max_inflight: int = 3  # readahead fetches in flight per file

    def __post_init__(self) -> None:
        if self.max_bytes < 0:
            raise ValueError(f"readahead max_bytes (={self.max_bytes}) must be >= 0")
        if self.request_bytes < 1:
            raise ValueError(f"readahead request_bytes (={self.request_bytes}) must be >= 1")
        if self.max_inflight < 1:
            raise ValueError(f"readahead max_inflight (={self.max_inflight}) must be >= 1")

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0


@dataclass(slots=True)
class _FileState:
    layer: int
    entry: TocEntry
    next_offset: int = 0  # where a sequential read would start
    window: int = 0  # bytes past the reader's end to have fetched or in flight (0: not sequential)
    ahead: int = 0  # file offset up to which readahead was issued
    inflight: set[asyncio.Task[None]] = field(default_factory=set)


class Readahead:
    """Sequential-read detection and bounded readahead for one `LazyStore`."""

    def __init__(self, store: LazyStore, policy: ReadaheadPolicy) -> None:
        self.store = store
        self.policy = policy
        self._files: OrderedDict[str, _FileState] = OrderedDict()
        self.fetches = 0  # readahead fetches started
        self.failures = 0  # readahead fetches that failed (the reader fetched on its own)

    def note_hit(self, loop: asyncio.AbstractEventLoop, path: str, offset: int, end: int) -> None:
        """A read of `[offset, end)` was served from the cache in another thread: move the reader's
        position on, and wake the loop only when the window has room for another fetch."""
        st = self._files.get(path)
        if st is None or st.window == 0 or offset != st.next_offset:
            return
        st.next_offset = end  # a plain store: the loop reads it in `_pump`
        if st.ahead < min(st.entry.size, end + st.window) and len(st.inflight) < self.policy.max_inflight:
            loop.call_soon_threadsafe(self._pump, path, st)

    def on_read(self, path: str, layer: int, entry: TocEntry, offset: int, end: int) -> None:
        """A reader asked `[offset, end)` of the canonical `path`: update its window, fetch ahead."""
        st = self._files.get(path)
        if st is None or st.entry is not entry:
            st = _FileState(layer, entry)
            self._files[path] = st
            while len(self._files) > MAX_TRACKED_FILES:
                _, old = self._files.popitem(last=False)
                old.window = 0
        else:
            self._files.move_to_end(path)
        if offset == st.next_offset:
            st.window = min(self.policy.max_bytes, max(2 * st.window, 2 * (end - offset)))
        else:
            st.window = 0
            st.ahead = end
        st.next_offset = end
        st.ahead = max(st.ahead, end)
        self._pump(path, st)

    def _pump(self, path: str, st: _FileState) -> None:
        target = min(st.entry.size, st.next_offset + st.window)
        while st.window > 0 and st.ahead < target and len(st.inflight) < self.policy.max_inflight:
            stop = min(target, st.ahead + self.policy.request_bytes)
            units = self.store.units_for(st.layer, st.entry, ByteRange(st.ahead, stop))
            if not units:
                break
            st.ahead = max(stop, units[-1].file_range.stop)
            task = asyncio.get_running_loop().create_task(self._fetch(units))
            st.inflight.add(task)
            task.add_done_callback(functools.partial(self._done, path=path, st=st))
            self.fetches += 1

    async def _fetch(self, units: Sequence[Unit]) -> None:
        await self.store.load(units, Purpose.READAHEAD)

    def _done(self, task: asyncio.Task[None], *, path: str, st: _FileState) -> None:
        st.inflight.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            self.failures += 1
            st.window = 0  # stop reading ahead of a file whose fetches fail
            return
        if self._files.get(path) is st:
            self._pump(path, st)

    async def cancel(self) -> None:
        """Cancel every readahead in flight (the store is being closed)."""
        tasks = [t for st in self._files.values() for t in st.inflight]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
