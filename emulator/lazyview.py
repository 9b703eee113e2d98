"""Opening a lazy store, and its blocking thread-safe `FileSystemView` (what FUSE consumes).

Threading model: the store and its aiohttp client live on ONE asyncio loop running in a
background daemon thread (`LoopThread`). `LazyView` answers metadata (stat, listdir, readlink,
xattrs) in the calling thread from the merged tree (immutable once the TOCs are loaded), and
reads whose units are all cached from the cache (`LazyStore.read_cached`): no loop hop, which
costs ~0.1-0.5 ms per call. Other reads are submitted to the loop with
`asyncio.run_coroutine_threadsafe` and waited for, so any number of threads (FUSE's worker
threads) may call at once; the loop serialises fetch state, and concurrent reads of the same
chunk share one fetch. Errors come back as `OSError` with an
errno: ENOENT/ENOTDIR/EISDIR/EINVAL/ELOOP from the tree, EIO for anything that went wrong
fetching or verifying (the `EmulatorError` is chained as `__cause__` and its text is the
OSError's strerror). Never wrong bytes.

    view, close = open_lazy_view("127.0.0.1:5000/lab/app:v1", LazyOptions())
    try:
        data = view.read("etc/os-release", 0, 4096)
    finally:
        close()
"""

from __future__ import annotations

import asyncio
import errno
import functools
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from emulator.cache import Cache, make_node_cache
from emulator.client import ClientOptions, RegistryClient, ResolvedImage
from emulator.counters import CounterSet, Purpose
from emulator.errors import EmulatorError, NotLazyError
from emulator.prefetch import BackgroundFetcher, prefetch
from emulator.ranges import RangeFetcher
from emulator.readahead import ReadaheadPolicy
from emulator.recorder import NullRecorder, Recorder
from emulator.reference import ImageReference, parse_reference
from emulator.store import Granularity, LazyStore, StoreOptions
from emulator.tocfetch import fetch_toc
from emulator.view import Stat
from imageformat.errors import FormatError
from startup.scenario import LandmarkPrefetch, PrefetchSpec

T = TypeVar("T")

# The blocking view reads ahead of sequential readers (programs through FUSE, `lazy cat`).
VIEW_READAHEAD = ReadaheadPolicy(max_bytes=16 << 20, request_bytes=2 << 20, max_inflight=3)


@dataclass(frozen=True, kw_only=True)
class LazyOptions:
    client: ClientOptions = field(default_factory=ClientOptions)
    store: StoreOptions = field(default_factory=lambda: StoreOptions(readahead=VIEW_READAHEAD))
    # awaited before the view is returned (stargz-store's default: the landmark range, if any)
    prefetch: PrefetchSpec = field(default_factory=lambda: LandmarkPrefetch(fallback_to_trace=False))
    background: bool = False  # fetch the rest of every layer at low priority
    background_concurrency: int = 2
    cache_memory_bytes: int = 256 << 20
    cache_dir: Path | None = None  # on-disk cache (None: memory only)
    cache_disk_bytes: int = 4 << 30



async def open_store(
    client: RegistryClient,
    ref: ImageReference,
    *,
    cache: Cache,
    options: StoreOptions | None = None,
    image: ResolvedImage | None = None,
    node_counters: CounterSet | None = None,
    fetcher: RangeFetcher | None = None,
) -> LazyStore:
    """Resolve `ref` (unless `image` is given), fetch and verify every layer's TOC in parallel."""
    options = options or StoreOptions()
    image = image or await client.resolve(ref)
    fetcher = fetcher or RangeFetcher(client, options.range_policy)
    results = await asyncio.gather(*(fetch_toc(fetcher, ref, layer) for layer in image.layers))
    tocs = []
    for layer, (toc, _) in zip(image.layers, results, strict=True):
        if toc is None:
            raise NotLazyError(
                f"layer {layer.digest[:19]} ({layer.media_type}) has no TOC: it cannot be lazy"
            )
        tocs.append(toc)
    store = LazyStore(
        ref=ref,
        image=image,
        tocs=tocs,
        fetcher=fetcher,
        cache=cache,
        options=options,
        node_counters=node_counters,
    )
    for i, (_, stats) in enumerate(results):
        store._count(i, "add_transfer", Purpose.TOC, stats.body_bytes, stats.requests, stats.ranges)
    return store


class LoopThread:
    """An asyncio loop running forever in a daemon thread; `run(coro)` blocks for its result."""

    def __init__(self, name: str = "lazylab-store") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run called from its own loop (would deadlock)")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        if self.loop.is_closed():
            return

        async def _cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(_cancel_rest(), timeout_s=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


def _oserror(e: BaseException, path: str) -> OSError:
    if isinstance(e, OSError):
        return e
    err = OSError(errno.EIO, f"{type(e).__name__}: {e}", path)
    err.__cause__ = e
    return err


class LazyView:
    """Blocking, thread-safe `FileSystemView` over a `LazyStore` living on `loop`."""

    def __init__(self, store: LazyStore, loop: LoopThread) -> None:
        self.store = store
        self._loop = loop

    def _call(self, coro: Coroutine[Any, Any, T], path: str) -> T:
        try:
            return self._loop.run(coro)
        except (EmulatorError, FormatError, OSError) as e:
            raise _oserror(e, path) from e

    def _now(self, fn: Callable[[str], T], path: str) -> T:
        try:
            return fn(path)
        except (EmulatorError, FormatError, OSError) as e:
            raise _oserror(e, path) from e

    def stat(self, path: str) -> Stat:
        return self._now(self.store.stat_now, path)

    def listdir(self, path: str) -> list[str]:
        return self._now(self.store.listdir_now, path)

    def readlink(self, path: str) -> str:
        return self._now(self.store.readlink_now, path)

    def xattrs(self, path: str) -> dict[str, bytes]:
        return self._now(self.store.xattrs_now, path)

    def read(self, path: str, offset: int, length: int) -> bytes:
        data = self._now(lambda p: self.store.read_cached(p, offset, length), path)
        if data is not None:
            return data
        return self._call(self.store.read(path, offset, length), path)


class OpenedView(NamedTuple):
    """`(view, close)`; also a context manager yielding the view and closing it on exit."""

    view: LazyView
    close: Callable[[], None]

    def __enter__(self) -> LazyView:
        return self.view

    def __exit__(self, *exc: object) -> None:
        self.close()


def lazy_options_from(obj: object) -> LazyOptions:
    """LazyOptions from an argparse Namespace (attributes `cache_dir`, `granularity`, `background`,
    `insecure`, `username`/`password` when present); LazyOptions itself passes through."""
    if isinstance(obj, LazyOptions):
        return obj
    get = functools.partial(getattr, obj)
    cache_dir = get("cache_dir", None)
    granularity = get("granularity", None)
    user, password = get("username", None), get("password", None)
    return LazyOptions(
        client=ClientOptions(
            insecure_http=bool(get("insecure", False)), username=user, password=password if user else None
        ),
        store=StoreOptions(
            granularity=Granularity(granularity or Granularity.CHUNK.value), readahead=VIEW_READAHEAD
        ),
        background=bool(get("background", False)),
        cache_dir=Path(cache_dir) if cache_dir else None,
    )


def open_lazy_view(
    ref: str | ImageReference,
    options: LazyOptions | object | None = None,
    *,
    recorder: Recorder | None = None,
) -> OpenedView:
    """Start a loop thread, resolve `ref`, fetch the TOCs, run the prefetch; return (view, close).

    `close()` stops background fetching, closes the HTTP pool and stops the loop thread; it is
    idempotent. Errors while opening (bad reference, registry, TOC) raise EmulatorError /
    FormatError after the thread is stopped. `options` may also be an argparse Namespace
    (see `lazy_options_from`).
    """
    options = lazy_options_from(options) if options is not None else LazyOptions()
    image_ref = parse_reference(ref) if isinstance(ref, str) else ref
    loop = LoopThread()
    state: dict[str, Any] = {}

    async def _open() -> LazyStore:
        client = RegistryClient(options.client, recorder=recorder or NullRecorder())
        state["client"] = client
        cache = make_node_cache(
            memory_bytes=options.cache_memory_bytes,
            disk_dir=options.cache_dir,
            disk_bytes=options.cache_disk_bytes,
        )
        state["cache"] = cache
        store = await open_store(client, image_ref, cache=cache, options=options.store)
        state["store"] = store
        await prefetch(store, options.prefetch)
        if options.background:
            bg = BackgroundFetcher(store, concurrency=options.background_concurrency)
            bg.start()
            state["background"] = bg
        return store

    async def _close() -> None:
        store = state.get("store")
        if store is not None:
            await store.close()
        bg = state.get("background")
        if bg is not None:
            await bg.stop()
        client = state.get("client")
        if client is not None:
            await client.close()
        cache = state.get("cache")
        if cache is not None:
            await asyncio.to_thread(cache.flush)  # the disk cache complete before the view is gone

    closed = False

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        try:
            loop.run(_close(), timeout_s=30)
        finally:
            loop.stop()

    try:
        store = loop.run(_open())
    except BaseException:
        close()
        raise
    return OpenedView(LazyView(store, loop), close)
