"""Prefetch and background fetch through registry_mock: everything ends up cached and verified."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from emulator_fixtures import MockImages

from emulator.cache import make_node_cache
from emulator.client import RegistryClient
from emulator.counters import Purpose
from emulator.lazyview import open_store
from emulator.prefetch import BackgroundFetcher, prefetch, prefetch_units
from emulator.reference import parse_reference
from registry_mock.app import running_registry
from startup.scenario import FirstBytesPrefetch, TracePrefetch
from startup.trace import Op, Trace, TraceOp


@pytest.fixture(scope="module")
def address(mock_images: MockImages) -> Iterator[str]:
    with running_registry(storage=mock_images.storage) as reg:
        yield reg.address


@pytest.mark.parametrize("fmt", ["estargz", "zstd:chunked"])
async def test_background_fills_everything_while_reads_go_first(
    mock_images: MockImages, address: str, fmt: str
) -> None:
    files = mock_images.files(1)
    ref = parse_reference(f"{address}/{mock_images.refs[(1, fmt)]}")
    async with RegistryClient() as client:
        store = await open_store(client, ref, cache=make_node_cache(memory_bytes=64 << 20))
        names = sorted(n for n, d in files.items() if d)
        biggest = max(names, key=lambda n: len(files[n]))
        assert await store.read(biggest, 0, 1 << 30) == files[biggest]  # on demand, before any fill
        bg = BackgroundFetcher(store, concurrency=2, request_bytes=200_000)
        bg.start()
        reads = await asyncio.gather(*(store.read(n, 0, 1 << 30) for n in names[:5]))
        assert list(reads) == [files[n] for n in names[:5]]
        await asyncio.wait_for(bg.done.wait(), 60)
        assert bg.error is None, repr(bg.error)
        t = store.totals()
        assert t.bytes_background > 0 and t.bytes_on_demand > 0, t
        misses = t.cache_misses
        for n in names:  # everything is local now: no more misses, right bytes
            assert await store.read(n, 0, 1 << 30) == files[n]
        assert store.totals().cache_misses == misses, (store.totals(), misses)


async def test_prefetch_kinds(mock_images: MockImages, address: str) -> None:
    fmt = "zstd:chunked" if (1, "zstd:chunked") in mock_images.refs else "estargz"
    ref = parse_reference(f"{address}/{mock_images.refs[(1, fmt)]}")
    files = mock_images.files(1)
    name = sorted(n for n, d in files.items() if len(d) > 10_000)[0]
    trace = Trace.of([TraceOp(op=Op.READ, path=name, offset=0, length=100)])
    async with RegistryClient() as client:
        store = await open_store(client, ref, cache=make_node_cache(memory_bytes=64 << 20))
        assert prefetch_units(store, TracePrefetch(), trace)
        await prefetch(store, TracePrefetch(), trace)
        t = store.totals()
        assert t.bytes_prefetch > 0
        assert await store.read(name, 0, 1 << 30) == files[name]
        assert store.totals().bytes_on_demand == 0 and store.totals().cache_hits > 0
        first = prefetch_units(store, FirstBytesPrefetch(bytes=100_000), None)
        assert first and all(c.compressed.stop <= 100_000 for u in first for c in u.fetch_chunks)
    assert Purpose.PREFETCH.value == "prefetch"
