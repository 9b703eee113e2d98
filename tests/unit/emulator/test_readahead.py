"""Readahead policy: sequential detection, window growth and bounds, in-flight cap, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from emulator.counters import Purpose
from emulator.readahead import Readahead, ReadaheadPolicy
from imageformat.byterange import ByteRange

CHUNK = 10_000


class FakeStore:
    """units_for cuts files into CHUNK-sized units; load() blocks until the test releases it."""

    def __init__(self) -> None:
        self.loads: list[tuple[list[ByteRange], asyncio.Future[None]]] = []

    def units_for(self, layer: int, entry: Any, wanted: ByteRange) -> list[Any]:
        start = wanted.start // CHUNK * CHUNK
        return [
            SimpleNamespace(file_range=ByteRange(s, min(s + CHUNK, entry.size)))
            for s in range(start, min(wanted.stop, entry.size), CHUNK)
        ]

    async def load(self, units: Sequence[Any], purpose: Purpose) -> None:
        assert purpose is Purpose.READAHEAD
        fut = asyncio.get_running_loop().create_future()
        self.loads.append(([u.file_range for u in units], fut))
        await fut

    def fetched(self) -> list[ByteRange]:
        return [r for rs, _ in self.loads for r in rs]


def make(
    max_bytes: int = 1 << 20, request_bytes: int = 50_000, max_inflight: int = 2
) -> tuple[Readahead, FakeStore]:
    store = FakeStore()
    policy = ReadaheadPolicy(max_bytes=max_bytes, request_bytes=request_bytes, max_inflight=max_inflight)
    return Readahead(store, policy), store  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_first_read_at_zero_reads_ahead_twice_its_length() -> None:
    ra, store = make()
    entry = SimpleNamespace(size=1_000_000)
    ra.on_read("f", 0, entry, 0, 40_000)
    await settle()
    got = store.fetched()
    assert got[0].start == 40_000
    assert max(r.stop for r in got) <= 40_000 + 80_000 + CHUNK  # window = 2 x 40 kB, unit-rounded
    assert len(store.loads) <= 2  # in-flight cap


async def test_inflight_cap_and_refill_after_completion() -> None:
    ra, store = make(request_bytes=CHUNK, max_inflight=2)
    entry = SimpleNamespace(size=1_000_000)
    ra.on_read("f", 0, entry, 0, 100_000)  # window 200 kB: 20 units, 2 at a time
    await settle()
    assert len(store.loads) == 2
    store.loads[0][1].set_result(None)
    await settle()
    assert len(store.loads) == 3  # one finished, one more started
    assert sum(not f.done() for _, f in store.loads) == 2


async def test_window_doubles_and_is_capped() -> None:
    ra, store = make(max_bytes=150_000, request_bytes=1 << 20, max_inflight=8)
    entry = SimpleNamespace(size=10_000_000)
    off = 0
    for _ in range(4):
        ra.on_read("f", 0, entry, off, off + 20_000)
        off += 20_000
    st = ra._files["f"]
    assert st.window == 150_000  # 40k, 80k, 160k -> capped
    await settle()
    assert max(r.stop for r in store.fetched()) <= off + 150_000 + CHUNK


async def test_never_past_the_end_of_the_file() -> None:
    ra, store = make()
    entry = SimpleNamespace(size=55_000)
    ra.on_read("f", 0, entry, 0, 30_000)
    await settle()
    assert max(r.stop for r in store.fetched()) == 55_000


async def test_random_read_resets_the_window() -> None:
    ra, store = make()
    entry = SimpleNamespace(size=10_000_000)
    ra.on_read("f", 0, entry, 500_000, 510_000)  # not at 0, not after a previous read
    await settle()
    assert store.loads == [] and ra._files["f"].window == 0


async def test_failed_readahead_stops_reading_ahead() -> None:
    ra, store = make(request_bytes=CHUNK, max_inflight=1)
    entry = SimpleNamespace(size=1_000_000)
    ra.on_read("f", 0, entry, 0, 50_000)
    await settle()
    store.loads[0][1].set_exception(OSError("fetch failed"))
    await settle()
    assert ra.failures == 1 and ra._files["f"].window == 0 and len(store.loads) == 1


async def drain(store: FakeStore) -> None:
    """Let every readahead fetch finish (and the ones they start, until none is left)."""
    await settle()
    while any(not f.done() for _, f in store.loads):
        for _, f in store.loads:
            if not f.done():
                f.set_result(None)
        await settle()


async def test_cache_hits_move_the_reader_and_refill() -> None:
    ra, store = make(request_bytes=CHUNK, max_inflight=1)
    entry = SimpleNamespace(size=1_000_000)
    ra.on_read("f", 0, entry, 0, 20_000)  # window 40 kB: read ahead to 60 kB, then stop
    await drain(store)
    assert max(r.stop for r in store.fetched()) == 60_000
    loop = asyncio.get_running_loop()
    ra.note_hit(loop, "f", 20_000, 60_000)  # served from the cache in another thread
    await drain(store)
    assert ra._files["f"].next_offset == 60_000
    assert max(r.stop for r in store.fetched()) == 100_000  # 60 kB + the 40 kB window
    ra.note_hit(loop, "f", 900_000, 910_000)  # not where the reader was: ignored
    assert ra._files["f"].next_offset == 60_000


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        ReadaheadPolicy(max_bytes=-1)
    with pytest.raises(ValueError, match="request_bytes"):
        ReadaheadPolicy(request_bytes=0)
    with pytest.raises(ValueError, match="max_inflight"):
        ReadaheadPolicy(max_inflight=0)
    assert not ReadaheadPolicy().enabled
