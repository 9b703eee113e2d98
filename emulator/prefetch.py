"""Prefetch before "ready" and background fetch of the rest (stargz-store, formats.md §3.5/§4.4).

Prefetch kinds are the scenario's (`startup.scenario.PrefetchSpec`), so both engines read the
same TOML: `landmark` (every verification unit that lies before `.prefetch.landmark`; with
`fallback_to_trace`, the trace's files when a layer has no landmark), `trace` (the files the
workload's trace touches, in first-access order), `first-bytes` (units inside the first N blob
bytes of each layer), `none`.

Background fetch: every not-yet-cached unit of every layer, in blob order, in requests of about
`request_bytes` compressed bytes, by `concurrency` workers (stargz-store: 2) that wait while
any on-demand read or the prefetch is in flight (`LazyStore.prioritized`; and `resume_delay_s` after).
"""

from __future__ import annotations

import asyncio
import contextlib

from emulator.counters import Purpose
from emulator.store import LazyStore, Unit
from imageformat.byterange import ByteRange
from imageformat.toc import ChunkKind, EntryType
from startup.scenario import (
    FirstBytesPrefetch,
    LandmarkPrefetch,
    NoPrefetch,
    PrefetchSpec,
    TracePrefetch,
)
from startup.trace import Op, Trace


def _all_units(store: LazyStore, layer: int) -> list[Unit]:
    units: list[Unit] = []
    for e in store.tocs[layer].regular_files():
        if e.size:
            units.extend(store.units_for(layer, e))
    units.sort(key=lambda u: min((c.compressed.start for c in u.fetch_chunks), default=0))
    return units


def _units_within(store: LazyStore, layer: int, blob_range: ByteRange) -> list[Unit]:
    return [
        u
        for u in _all_units(store, layer)
        if u.fetch_chunks and all(blob_range.contains(c.compressed) for c in u.fetch_chunks)
    ]


def trace_units(store: LazyStore, trace: Trace) -> list[Unit]:
    """Units of the files the trace reads (whole files), in first-access order."""
    units: list[Unit] = []
    for path in dict.fromkeys(o.path for o in trace.ops if o.op in (Op.READ, Op.OPEN)):
        try:
            layer, entry = store.tree.regular(store.tree.resolve(path))
        except OSError:
            continue
        if entry.type is EntryType.REG and entry.size:
            units.extend(store.units_for(layer, entry))
    return units


def prefetch_units(store: LazyStore, spec: PrefetchSpec, trace: Trace | None = None) -> list[Unit]:
    """What `spec` says to fetch before the container counts as created."""
    if isinstance(spec, NoPrefetch):
        return []
    if isinstance(spec, TracePrefetch):
        return trace_units(store, trace) if trace else []
    if isinstance(spec, FirstBytesPrefetch):
        return [
            u
            for i, layer in enumerate(store.layers)
            for u in _units_within(store, i, ByteRange(0, min(spec.bytes, layer.size)))
        ]
    if isinstance(spec, LandmarkPrefetch):
        units: list[Unit] = []
        missing_landmark = False
        for i, toc in enumerate(store.tocs):
            if toc.prefetch is not None:
                units.extend(_units_within(store, i, toc.prefetch))
            elif not toc.no_prefetch:
                missing_landmark = True
        if missing_landmark and spec.fallback_to_trace and trace is not None:
            units.extend(trace_units(store, trace))
        return units
    raise TypeError(f"unknown prefetch spec {spec!r}")


async def prefetch(store: LazyStore, spec: PrefetchSpec, trace: Trace | None = None) -> int:
    """Fetch (and verify, and cache) the prefetch units; returns how many units it covered."""
    units = prefetch_units(store, spec, trace)
    if units:
        with store.prioritized():  # the background fetch yields to the prefetch (§4.4)
            await store.load(units, Purpose.PREFETCH)
    return len(units)


class BackgroundFetcher:
    """Low-priority fill of every layer's remaining units; pauses for on-demand reads."""

    def __init__(
        self,
        store: LazyStore,
        *,
        concurrency: int = 2,
        request_bytes: int = 1_000_000,
        resume_delay_s: float = 0.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency (={concurrency}) must be >= 1")
        if request_bytes < 1:
            raise ValueError(f"request_bytes (={request_bytes}) must be >= 1")
        self.store = store
        self.concurrency = concurrency
        self.request_bytes = request_bytes
        self.resume_delay_s = resume_delay_s
        self._tasks: list[asyncio.Task[None]] = []
        self._queue: asyncio.Queue[list[Unit]] = asyncio.Queue()
        self.done = asyncio.Event()
        self.error: BaseException | None = None

    def _batches(self) -> list[list[Unit]]:
        batches: list[list[Unit]] = []
        for i in range(len(self.store.layers)):
            cur: list[Unit] = []
            size = 0
            for u in _all_units(self.store, i):
                if all(c.kind is ChunkKind.ZEROS for c in u.chunks):
                    continue
                cur.append(u)
                size += sum(c.compressed.length for c in u.fetch_chunks)
                if size >= self.request_bytes:
                    batches.append(cur)
                    cur, size = [], 0
            if cur:
                batches.append(cur)
        return batches

    def start(self) -> None:
        for b in self._batches():
            self._queue.put_nowait(b)
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        asyncio.get_running_loop().create_task(self._finish())

    async def _finish(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.done.set()

    async def _worker(self) -> None:
        while True:
            try:
                batch = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            while not self.store.idle.is_set():
                await self.store.idle.wait()
                if self.resume_delay_s:
                    await asyncio.sleep(self.resume_delay_s)
            todo = [u for u in batch if self.store.cache.get(u.key) is None]
            if not todo:
                continue
            try:
                await self.store.load(todo, Purpose.BACKGROUND)
            except Exception as e:  # a background failure never breaks reads; they refetch on demand
                self.error = e

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.done.set()
