"""Readahead for sequential readers, the view's loop-free paths, and the operation counters."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from emulator_fixtures import sample_files

from emulator.cache import make_node_cache
from emulator.client import RegistryClient
from emulator.lazyview import LazyOptions, open_lazy_view, open_store
from emulator.modes import StartSpec, run_start
from emulator.node import EmulatedNode
from emulator.readahead import ReadaheadPolicy
from emulator.reference import parse_reference
from emulator.store import StoreOptions
from startup.modes import PullMode
from startup.trace import Op, Trace, TraceOp

pytestmark = pytest.mark.interop

BIG = "usr/bin/big"  # 3 MB of random bytes: many chunks


def _big() -> bytes:
    data = sample_files()[BIG]
    assert isinstance(data, bytes)
    return data


def _policy(max_bytes: int = 1 << 20) -> StoreOptions:
    policy = ReadaheadPolicy(max_bytes=max_bytes, request_bytes=256 << 10, max_inflight=2)
    return StoreOptions(readahead=policy)


async def test_sequential_reads_are_read_ahead_and_hit(built_images: dict[str, str]) -> None:
    ref = parse_reference(built_images["zstd:chunked"])
    big = _big()
    async with RegistryClient() as client:
        store = await open_store(client, ref, cache=make_node_cache(), options=_policy())
        got = bytearray()
        step = 128 << 10
        for off in range(0, len(big), step):
            got += await store.read(BIG, off, step)
        await store.close()
        t = store.totals()
    assert bytes(got) == big
    assert t.bytes_readahead > 0 and store.readahead is not None and store.readahead.fetches > 0
    # most units were there (or on their way) before the reader asked: hits outnumber misses
    assert t.cache_hits > t.cache_misses
    # nothing fetched twice: on-demand + readahead bytes stay within the layer blob's size
    assert t.bytes_on_demand + t.bytes_readahead <= store.layers[0].size


async def test_random_reads_are_not_read_ahead(built_images: dict[str, str]) -> None:
    ref = parse_reference(built_images["zstd:chunked"])
    big = _big()
    async with RegistryClient() as client:
        store = await open_store(client, ref, cache=make_node_cache(), options=_policy())
        for off in (2_000_000, 100_000, 1_500_000, 700_000):
            assert await store.read(BIG, off, 10_000) == big[off : off + 10_000]
        await store.close()
    assert store.totals().bytes_readahead == 0


async def test_readahead_stays_within_its_window(built_images: dict[str, str]) -> None:
    ref = parse_reference(built_images["zstd:chunked"])
    async with RegistryClient() as client:
        store = await open_store(client, ref, cache=make_node_cache(), options=_policy(max_bytes=8 << 20))
        await store.read(BIG, 0, 50_000)  # first read at 0: window = 2 x 50 kB
        ra = store.readahead
        assert ra is not None
        canonical = store.tree.resolve(BIG)
        st = ra._files[canonical]
        biggest_unit = max(c.size for c in store.tree.regular(canonical)[1].chunks)
        assert st.window == 100_000
        assert st.ahead <= 50_000 + st.window + biggest_unit
        await store.close()


async def test_readahead_off_by_default(built_images: dict[str, str]) -> None:
    ref = parse_reference(built_images["zstd:chunked"])
    async with RegistryClient() as client:
        store = await open_store(client, ref, cache=make_node_cache())
        assert store.readahead is None
        for off in range(0, 1 << 20, 128 << 10):
            await store.read(BIG, off, 128 << 10)
        assert store.totals().bytes_readahead == 0


def test_view_serves_metadata_and_warm_reads_without_the_loop(built_images: dict[str, str]) -> None:
    big = _big()
    with open_lazy_view(built_images["zstd:chunked"], LazyOptions()) as view:
        assert view.read(BIG, 0, 100_000) == big[:100_000]  # cold: fetched through the loop
        blocked, release = threading.Event(), threading.Event()

        async def hog() -> None:
            blocked.set()
            release.wait(30)  # keeps the store's loop busy

        fut = asyncio.run_coroutine_threadsafe(hog(), view._loop.loop)
        try:
            assert blocked.wait(30)
            # the loop is stuck: these must all be answered in this thread
            assert view.stat(BIG).size == len(big)
            assert "big" in view.listdir("usr/bin")
            assert view.readlink("usr/bin/link") == "big"
            assert view.xattrs(BIG) == {}
            assert view.read(BIG, 10, 50_000) == big[10:50_010]  # warm
            with pytest.raises(OSError):
                view.stat("no/such/file")
        finally:
            release.set()
            fut.result(30)
        counters = view.store.totals()
        assert counters.view_ops >= 7 and counters.view_cpu_s > 0


async def test_lazy_start_counts_its_operations(built_images: dict[str, str], tmp_path: Path) -> None:
    ref = parse_reference(built_images["zstd:chunked"])
    trace = Trace.of(
        [
            TraceOp(op=Op.STAT, path="etc/hello"),
            TraceOp(op=Op.READ, path="etc/hello", offset=0, length=4096),
            TraceOp(op=Op.STAT, path="usr/bin/missing"),
            TraceOp(op=Op.READLINK, path="usr/bin/link"),
            TraceOp(op=Op.READ, path=BIG, offset=0, length=65536),
            TraceOp(op=Op.LISTDIR, path="usr/bin"),
        ]
    )
    node = EmulatedNode("node", tmp_path / "node")
    try:
        lazy = await run_start(node, ref, StartSpec(mode=PullMode.LAZY, trace=trace))
        full = await run_start(node, ref, StartSpec(mode=PullMode.FULL, trace=trace, pod="pod-1"))
    finally:
        await node.close()
    assert lazy.ok and lazy.fuse_ops == len(trace) and lazy.fuse_cpu_s > 0
    assert full.ok and full.fuse_ops == 0 and full.fuse_cpu_s == 0
