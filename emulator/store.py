"""The lazy store: an image's merged file tree, served from verified chunks fetched on demand.

Async core (one event loop): `LazyStore.open(...)` resolves the image and fetches/verifies each
layer's TOC; `stat`/`listdir`/`readlink`/`xattrs` answer from the TOCs; `read(path, offset,
length)` fetches only the chunks covering the bytes asked. `emulator.lazyview` wraps it in the
blocking, thread-safe `FileSystemView`.

Verification unit: a chunk with a `chunkDigest`, a single-chunk file (the file digest), or -
when a multi-chunk file has no chunk digests - the whole file. A unit's bytes are decoded,
hashed and compared before they are cached or returned: no byte reaches a reader unverified.
Fetch granularity: `CHUNK` asks for the chunks' compressed ranges (c/storage style); `BLOCK`
asks for the 50 000-byte aligned blob blocks covering them (stargz-store style), caching the
raw blocks too (a unit that fails verification evicts its blocks and is fetched once more).
Concurrent readers of the same unit share one fetch. Sequential readers can be read ahead of
(`emulator.readahead`, off by default). Decoding and hashing of large fetches runs in a worker
thread (zstd and sha256 release the GIL), so the loop keeps receiving the next fetch meanwhile.

Thread safety: the async API belongs to the loop; the `*_now` methods (metadata from the merged
tree, which never changes once the TOCs are loaded, and `read_cached`, which serves a read only
when every unit is in the cache) may be called from any thread: counters are updated under a
lock, the caches are thread-safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from emulator.cache import Cache
from emulator.client import LayerDescriptor, ResolvedImage
from emulator.counters import POD_COUNTERS, Counters, CounterSet, Purpose
from emulator.errors import VerificationError
from emulator.overlay import MergedTree
from emulator.ranges import RangeFetcher, RangePolicy
from emulator.readahead import Readahead, ReadaheadPolicy
from emulator.recorder import timed
from emulator.reference import ImageReference
from emulator.units import Unit, assemble, units_for
from emulator.view import Stat
from imageformat.byterange import ByteRange, merge_ranges
from imageformat.layer import ChunkDecodeError, decode_chunk
from imageformat.toc import ChunkKind, Toc, TocEntry

DECODE_IN_THREAD_BYTES = 256 << 10  # fetches that decode to at least this much decode off the loop
MAX_CACHED_STATS = 200_000
K = TypeVar("K")
V = TypeVar("V")


def _remember(memo: dict[K, V], key: K, value: V) -> V:
    """`memo[key] = value`, emptying the memo first when it holds MAX_CACHED_STATS entries."""
    if len(memo) >= MAX_CACHED_STATS:
        memo.clear()
    memo[key] = value
    return value


class _Prioritized:
    """`LazyStore.prioritized()`: counts prioritized tasks in flight, `idle` set when none is (a
    plain class: every on-demand read enters it, and a generator context manager costs more)."""

    __slots__ = ("_idle", "_in_flight")

    def __init__(self, idle: asyncio.Event) -> None:
        self._idle = idle
        self._in_flight = 0

    def __enter__(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()


class Granularity(StrEnum):
    CHUNK = "chunk"
    BLOCK = "block"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreOptions:
    granularity: Granularity = Granularity.CHUNK
    block_size_bytes: int = 50_000  # stargz-store `blob.chunk_size`
    range_policy: RangePolicy = field(default_factory=RangePolicy)
    verify_retries: int = 1  # refetch a unit this many times after a digest mismatch
    readahead: ReadaheadPolicy = field(default_factory=ReadaheadPolicy)  # off by default

    def __post_init__(self) -> None:
        if self.block_size_bytes < 1:
            raise ValueError(f"block_size_bytes (={self.block_size_bytes}) must be >= 1")
        if self.verify_retries < 0:
            raise ValueError(f"verify_retries (={self.verify_retries}) must be >= 0")


class LazyStore:
    """One image's lazily fetched file tree (async API; call from the store's event loop)."""

    def __init__(
        self,
        *,
        ref: ImageReference,
        image: ResolvedImage,
        tocs: Sequence[Toc],
        fetcher: RangeFetcher,
        cache: Cache,
        options: StoreOptions | None = None,
        counters: CounterSet | None = None,
        node_counters: CounterSet | None = None,
    ) -> None:
        if len(tocs) != len(image.layers):
            raise ValueError("one TOC per layer is needed")
        self.ref = ref
        self.image = image
        self.tocs = list(tocs)
        self.layers: list[LayerDescriptor] = list(image.layers)
        self.fetcher = fetcher
        self.cache = cache
        self.options = options or StoreOptions()
        self.counters = counters or CounterSet()
        self.node_counters = node_counters
        self.tree = MergedTree(self.tocs)
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self.idle = asyncio.Event()  # set while no on-demand read or prefetch is in flight
        self.idle.set()
        self._prioritized = _Prioritized(self.idle)
        self._counter_lock = threading.Lock()
        self._stats: dict[str, Stat] = {}  # path -> stat (the tree never changes)
        self._files: dict[str, tuple[str, int, TocEntry]] = {}  # path -> (canonical, layer, entry)
        self._units: dict[tuple[str, int, int], tuple[Unit, ...]] = {}  # (canonical, start, stop) -> units
        self._layer_targets: dict[int, tuple[tuple[CounterSet | None, ...], list[Counters]]] = {}
        self.readahead = Readahead(self, self.options.readahead) if self.options.readahead.enabled else None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # built outside a loop: `bind_loop` before `read_cached` needs it
            self._loop = None

    # -- counters -----------------------------------------------------------------------------
    def _targets(self, layer: int) -> list[Counters]:
        sets = (self.counters, self.node_counters)
        cached = self._layer_targets.get(layer)
        if cached is None or cached[0] != sets:  # a CounterSet hands out one Counters per layer for good
            digest = self.layers[layer].digest
            cached = self._layer_targets[layer] = (sets, [cs.layer(digest) for cs in sets if cs is not None])
        pod = POD_COUNTERS.get()
        return cached[1] if pod is None else [*cached[1], pod]

    def _count(self, layer: int, fn: str, *args: object) -> None:
        targets = self._targets(layer)
        with self._counter_lock:
            for c in targets:
                getattr(c, fn)(*args)

    def _bump(self, layer: int, attr: str, n: int = 1) -> None:
        targets = self._targets(layer)
        with self._counter_lock:
            for c in targets:
                setattr(c, attr, getattr(c, attr) + n)

    def _op(self, layer: int, cpu_s: float) -> None:
        """One file-system operation served (see `Counters.view_ops`)."""
        self._count(max(0, layer), "observe_op", cpu_s)

    def totals(self) -> Counters:
        return self.counters.total()

    # -- metadata (the merged tree is immutable: any thread) ----------------------------------
    def stat_now(self, path: str) -> Stat:
        t0 = time.thread_time()
        try:
            st = self._stats.get(path)
            if st is None:  # a directory's stat counts its subdirectories: worth keeping
                st = _remember(self._stats, path, self.tree.stat(path))
            return st
        finally:
            self._op(0, time.thread_time() - t0)

    def stat_now_uncounted(self, path: str) -> Stat:
        st = self._stats.get(path)
        return st if st is not None else self.tree.stat(path)

    def listdir_now(self, path: str) -> list[str]:
        t0 = time.thread_time()
        try:
            return self.tree.listdir(path)
        finally:
            self._op(0, time.thread_time() - t0)

    def readlink_now(self, path: str) -> str:
        t0 = time.thread_time()
        try:
            return self.tree.readlink(path)
        finally:
            self._op(0, time.thread_time() - t0)

    def xattrs_now(self, path: str) -> dict[str, bytes]:
        t0 = time.thread_time()
        try:
            return dict(self.stat_now_uncounted(path).xattrs)
        finally:
            self._op(0, time.thread_time() - t0)

    async def stat(self, path: str) -> Stat:
        return self.stat_now(path)

    async def listdir(self, path: str) -> list[str]:
        return self.listdir_now(path)

    async def readlink(self, path: str) -> str:
        return self.readlink_now(path)

    async def xattrs(self, path: str) -> dict[str, bytes]:
        return self.xattrs_now(path)

    # -- units --------------------------------------------------------------------------------
    def units_for(self, layer: int, entry: TocEntry, wanted: ByteRange | None = None) -> list[Unit]:
        """The verification units covering `wanted` (default: the whole file)."""
        return units_for(layer, self.layers[layer].digest, entry, wanted)

    def _read_units(self, canonical: str, layer: int, entry: TocEntry, wanted: ByteRange) -> tuple[Unit, ...]:
        """`units_for` of a read, kept per (file, range): readers repeat their ranges (FUSE reads
        aligned blocks), and building the units (chunk search, keys) costs more than the lookup."""
        key = (canonical, wanted.start, wanted.stop)
        units = self._units.get(key)
        if units is None:
            units = _remember(self._units, key, tuple(self.units_for(layer, entry, wanted)))
        return units

    def prioritized(self) -> _Prioritized:
        """A prioritized task (an on-demand read, the prefetch) is in flight: background fetch
        waits until none is (stargz-store's task manager, formats spec §4.4)."""
        return self._prioritized

    # -- reads --------------------------------------------------------------------------------
    def _plan_read(self, path: str, offset: int, length: int) -> tuple[str, int, TocEntry, ByteRange | None]:
        """(canonical path, layer, entry, the file range to read — None when the read is empty)."""
        found = self._files.get(path)
        if found is None:  # resolving walks the path: worth keeping (the tree never changes)
            canonical = self.tree.resolve(path)
            found = _remember(self._files, path, (canonical, *self.tree.regular(canonical)))
        canonical, layer, entry = found
        end = min(entry.size, offset + max(0, length))
        return canonical, layer, entry, (ByteRange(offset, end) if offset < end else None)

    async def read(self, path: str, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` of the file at `path` (symlinks followed), fetched on demand."""
        start, cpu0 = time.perf_counter(), time.thread_time()
        canonical, layer, entry, wanted = self._plan_read(path, offset, length)
        if wanted is None:
            self._op(layer, time.thread_time() - cpu0)
            return b""
        end = wanted.stop
        units = self._read_units(canonical, layer, entry, wanted)
        if self.readahead is not None:
            self.readahead.on_read(canonical, layer, entry, offset, end)
        cpu_s = time.thread_time() - cpu0
        with self._prioritized:
            contents = await self.load(units, Purpose.ON_DEMAND)
        cpu1 = time.thread_time()
        out = assemble(units, contents, wanted)
        latency_s = time.perf_counter() - start
        targets = self._targets(layer)
        cpu_s += time.thread_time() - cpu1
        with self._counter_lock:
            for c in targets:
                c.observe_read(latency_s)
                c.observe_op(cpu_s)
        return out

    def read_cached(self, path: str, offset: int, length: int) -> bytes | None:
        """The read served from the cache alone, or None if a unit is missing (any thread; no fetch).

        Counted like `read` (cache hits, latency, one operation); a file with a readahead window
        tells the loop where the reader is, so readahead keeps going while hits are served here."""
        start, cpu0 = time.perf_counter(), time.thread_time()
        canonical, layer, entry, wanted = self._plan_read(path, offset, length)
        if wanted is None:
            self._op(layer, time.thread_time() - cpu0)
            return b""
        end = wanted.stop
        units = self._read_units(canonical, layer, entry, wanted)
        contents: dict[str, bytes] = {}
        hits = 0
        for u in units:
            if u.key in contents:
                continue
            if not u.fetch_chunks:
                contents[u.key] = bytes(u.size)
                continue
            data = self.cache.get(u.key)
            if data is None:
                return None
            contents[u.key] = data
            hits += 1
        if self.readahead is not None and self._loop is not None:
            self.readahead.note_hit(self._loop, canonical, offset, end)
        out = assemble(units, contents, wanted)
        latency_s, cpu_s = time.perf_counter() - start, time.thread_time() - cpu0
        targets = self._targets(layer)
        with self._counter_lock:
            for c in targets:
                c.cache_hits += hits
                c.observe_read(latency_s)
                c.observe_op(cpu_s)
        return out

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the async API runs on (needed by `read_cached` callers in other threads)."""
        self._loop = loop

    async def close(self) -> None:
        """Stop readahead in flight (the caches and the client stay: they are shared)."""
        if self.readahead is not None:
            await self.readahead.cancel()

    async def load(self, units: Iterable[Unit], purpose: Purpose) -> dict[str, bytes]:
        """Verified content of every unit (cache, shared in-flight fetch, or one fetch per layer)."""
        result: dict[str, bytes] = {}
        waits: dict[str, asyncio.Future[bytes]] = {}
        mine: list[Unit] = []
        loop = asyncio.get_running_loop()
        if not isinstance(units, (list, tuple)) or len(units) > 1:
            units = {u.key: u for u in units}.values()  # each unit once
        counted = purpose is Purpose.ON_DEMAND  # hits/misses describe what readers saw
        cache_get, inflight = self.cache.get, self._inflight
        for u in units:
            if not u.fetch_chunks:
                result[u.key] = bytes(u.size)
                continue
            data = cache_get(u.key)
            if data is not None:
                if counted:
                    self._bump(u.layer, "cache_hits")
                result[u.key] = data
            elif u.key in inflight:
                if counted:
                    self._bump(u.layer, "cache_hits")
                waits[u.key] = inflight[u.key]
            else:
                if counted:
                    self._bump(u.layer, "cache_misses")
                fut: asyncio.Future[bytes] = loop.create_future()
                inflight[u.key] = fut
                mine.append(u)
        if mine:
            try:
                fetched = await self._fetch_units(mine, purpose)
            except BaseException as e:
                for u in mine:
                    fut = self._inflight.pop(u.key)
                    if not fut.done():
                        fut.set_exception(e)
                        fut.exception()  # mark retrieved: the waiters re-raise it
                raise
            for u in mine:
                self._inflight.pop(u.key).set_result(fetched[u.key])
            result.update(fetched)
        for key, w in waits.items():
            result[key] = await asyncio.shield(w)
        return result

    async def _fetch_units(self, units: list[Unit], purpose: Purpose) -> dict[str, bytes]:
        by_layer: dict[int, list[Unit]] = {}
        for u in units:
            by_layer.setdefault(u.layer, []).append(u)
        if len(by_layer) == 1:  # the common case: no task per layer
            ((i, us),) = by_layer.items()
            return await self._fetch_layer_units(i, us, purpose)
        out: dict[str, bytes] = {}
        results = await asyncio.gather(
            *(self._fetch_layer_units(i, us, purpose) for i, us in by_layer.items())
        )
        for r in results:
            out.update(r)
        return out

    async def _fetch_layer_units(self, layer: int, units: list[Unit], purpose: Purpose) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        pending = units
        for attempt in range(self.options.verify_retries + 1):
            compressed = await self._fetch_compressed(
                layer, [c.compressed for u in pending for c in u.fetch_chunks], purpose, refresh=attempt > 0
            )
            if sum(u.size for u in pending) >= DECODE_IN_THREAD_BYTES:
                decoded, failed = await asyncio.to_thread(self._decode_units, layer, pending, compressed)
            else:
                decoded, failed = self._decode_units(layer, pending, compressed)
            out.update(decoded)
            if not failed:
                return out
            pending = failed
        u = pending[0]
        raise VerificationError(
            f"layer {self.layers[layer].digest[:19]}: bytes {u.chunks[0].compressed.to_http()} do not match "
            f"{u.digest} after {self.options.verify_retries + 1} fetches"
        )

    def _decode_units(
        self, layer: int, units: list[Unit], compressed: dict[ByteRange, bytes]
    ) -> tuple[dict[str, bytes], list[Unit]]:
        """Decode, verify and cache each unit: (verified contents, units that failed verification)."""
        out: dict[str, bytes] = {}
        failed: list[Unit] = []
        for u in units:
            try:
                content = self._decode_unit(layer, u, compressed)
            except VerificationError:
                failed.append(u)
                continue
            self.cache.put(u.key, content)
            out[u.key] = content
        return out, failed

    def _decode_unit(self, layer: int, u: Unit, compressed: dict[ByteRange, bytes]) -> bytes:
        toc = self.tocs[layer]
        with timed(self.fetcher.client.recorder, "decode", layer=self.layers[layer].digest) as t:
            parts = []
            for c in u.chunks:
                data = b"" if c.kind is ChunkKind.ZEROS else compressed[c.compressed]
                try:
                    parts.append(decode_chunk(toc.compression, data, c, verify=False))
                except ChunkDecodeError as e:
                    raise VerificationError(str(e)) from None
            content = b"".join(parts)
            t.nbytes = len(content)
        if u.digest is not None:
            got = "sha256:" + hashlib.sha256(content).hexdigest()
            if got != u.digest:
                raise VerificationError(f"content digest {got} != {u.digest}")
        return content

    async def _fetch_compressed(
        self, layer: int, wanted: list[ByteRange], purpose: Purpose, *, refresh: bool
    ) -> dict[ByteRange, bytes]:
        desc = self.layers[layer]
        if self.options.granularity is Granularity.CHUNK:
            got, stats = await self.fetcher.fetch(self.ref, desc.digest, wanted, layer=desc.digest)
            self._count(layer, "add_transfer", purpose, stats.body_bytes, stats.requests, stats.ranges)
            return got
        # BLOCK: aligned blob blocks, cached raw (re-verified through the units they decode to)
        bs = self.options.block_size_bytes
        blocks: dict[int, bytes] = {}
        missing: list[ByteRange] = []
        for r in merge_ranges(wanted):
            for b in range(r.start // bs, (r.stop - 1) // bs + 1):
                if b in blocks:
                    continue
                key = f"{desc.digest}:blk{bs}:{b}"
                data = None if refresh else self.cache.get(key)
                if data is None:
                    missing.append(ByteRange(b * bs, min((b + 1) * bs, desc.size)))
                    blocks[b] = b""
                else:
                    blocks[b] = data
        if missing:
            spans = merge_ranges(missing)
            got, stats = await self.fetcher.fetch(self.ref, desc.digest, spans, layer=desc.digest)
            self._count(layer, "add_transfer", purpose, stats.body_bytes, stats.requests, stats.ranges)
            for span in spans:
                data = got[span]
                for off in range(span.start, span.stop, bs):
                    b = off // bs
                    blocks[b] = data[off - span.start : off - span.start + bs]
                    self.cache.put(f"{desc.digest}:blk{bs}:{b}", blocks[b])
        out = {}
        for r in wanted:
            first, last = r.start // bs, (r.stop - 1) // bs
            joined = b"".join(blocks[b] for b in range(first, last + 1))
            out[r] = joined[r.start - first * bs : r.stop - first * bs]
        return out

