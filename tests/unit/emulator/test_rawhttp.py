"""The lean range-GET path (emulator.rawhttp) against registry_mock on loopback: the same bytes and
error types as through aiohttp, for plain answers and for every fault that makes it hand over."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from emulator import rawhttp
from emulator.client import ClientOptions, RegistryClient
from emulator.errors import NotFoundError, TransferError
from emulator.ranges import RangeFetcher
from emulator.rawhttp import NeedsFullClient, RawPool, lean_target
from emulator.reference import parse_reference
from imageformat.byterange import ByteRange
from registry_mock.app import RunningRegistry, start_registry
from registry_mock.config import AuthMode, AuthSpec, FaultKind, FaultRule, FaultSpec, RegistrySpec
from registry_mock.storage import MemoryStorage

BLOB = random.Random(5).randbytes(50_000)
FAST_RETRY = ClientOptions(max_retries=8, backoff_initial_s=0.001, backoff_max_s=0.005)
WANTED = [ByteRange(0, 100), ByteRange(10_000, 10_050), ByteRange(49_000, 50_000)]
SINGLES = [ByteRange(i * 5000, i * 5000 + 3000) for i in range(10)]


async def _registry(spec: RegistrySpec) -> tuple[RunningRegistry, str]:
    storage = MemoryStorage()
    digest = storage.put_blob_bytes(BLOB)
    storage.link_blob("lab/app", digest)
    return await start_registry(spec, storage=storage), digest


async def _fetch(spec: RegistrySpec, wanted: list[ByteRange] = WANTED) -> tuple[dict[ByteRange, bytes], list]:
    reg, digest = await _registry(spec)
    try:
        async with RegistryClient(FAST_RETRY) as client:
            ref = parse_reference(f"{reg.address}/lab/app:v1")
            fetcher = RangeFetcher(client)
            got, _ = await fetcher.fetch(ref, digest, wanted)
            for r in SINGLES:  # one request each, on the kept connection
                single, _ = await fetcher.fetch(ref, digest, [r])
                got.update(single)
            return got, reg.records
    finally:
        await reg.stop()


def _faults(kind: FaultKind, **fields: object) -> RegistrySpec:
    return RegistrySpec(faults=FaultSpec(seed=3, rules=(FaultRule(kind=kind, **fields),)))  # type: ignore[arg-type]


def _check(got: dict[ByteRange, bytes], wanted: list[ByteRange] = WANTED + SINGLES) -> None:
    assert got == {r: BLOB[r.start : r.stop] for r in wanted}


async def test_plain_ranges_reuse_one_connection() -> None:
    reg, digest = await _registry(RegistrySpec())
    ref = parse_reference(f"{reg.address}/lab/app:v1")
    try:
        async with RegistryClient(FAST_RETRY) as client:
            fetcher = RangeFetcher(client)
            for r in WANTED:
                got, stats = await fetcher.fetch(ref, digest, [r])
                _check(got, [r])
                assert stats.requests == 1
            assert [len(v) for v in client._raw._idle.values()] == [1]  # one keep-alive connection, reused
            with pytest.raises(NotFoundError):
                await fetcher.fetch(ref, "sha256:" + "0" * 64, [ByteRange(0, 1)])
    finally:
        await reg.stop()


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (FaultKind.RESET, {"fraction": 0.5}),
        (FaultKind.RESET, {"fraction": 0.5, "after_bytes": 0}),
        (FaultKind.TRUNCATE, {"fraction": 0.5}),
        (FaultKind.ERROR_5XX, {"fraction": 0.5}),
        (FaultKind.RANGE_IGNORE, {}),
        (FaultKind.REDIRECT, {}),
        (FaultKind.MULTIRANGE_400, {}),
        (FaultKind.RANGE_MERGE, {}),
    ],
)
async def test_fault_modes_give_the_right_bytes(kind: FaultKind, fields: dict) -> None:
    got, records = await _fetch(_faults(kind, **fields))
    _check(got)
    assert any(kind.value in r["faults"] for r in records)


async def test_persistent_reset_is_a_transfer_error() -> None:
    with pytest.raises(TransferError):
        await _fetch(_faults(FaultKind.RESET))


async def test_token_auth_challenge_then_lean_requests() -> None:
    got, records = await _fetch(RegistrySpec(auth=AuthSpec(mode=AuthMode.TOKEN, allow_anonymous_pull=True)))
    _check(got)
    statuses = [r["status"] for r in records if r["endpoint"] != "token"]
    assert statuses[0] == 401 and set(statuses[1:]) == {206}


def test_lean_target_only_for_plain_http() -> None:
    assert lean_target("http://127.0.0.1:5000/v2/a/blobs/x?y=1", {"Range": "bytes=0-1"}) == (
        "127.0.0.1", 5000, "/v2/a/blobs/x?y=1")
    assert lean_target("https://127.0.0.1:5000/v2/a", {}) is None
    assert lean_target("http://127.0.0.1:5000/v2/a b", {}) is None
    assert lean_target("http://127.0.0.1:5000/v2/a", {"X": "a\r\nInjected: 1"}) is None


# -- answers registry_mock never gives, from a scripted server ----------------------------------
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _scripted(script: Script) -> AsyncIterator[int]:
    server = await asyncio.start_server(script, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _get(pool: RawPool, port: int) -> bytes:
    async with await pool.get("127.0.0.1", port, "/x", {"Range": "bytes=0-3"}) as resp:
        assert resp.status == 206
        return await resp.read()


async def test_reconnects_when_the_server_closed_an_idle_connection() -> None:
    # no `Connection: close`: the client keeps the connection and finds it closed at its next request
    pool = RawPool(4)
    async for port in _scripted(_answering(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\n\r\nabcd")):
        assert await _get(pool, port) == b"abcd"
        await asyncio.sleep(0)  # let the FIN arrive
        assert await _get(pool, port) == b"abcd"
    pool.close()


def _answering(raw: bytes) -> Script:
    """A server that answers one request per connection with `raw`, then closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    return answer


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /y\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 206 Partial Content\r\n\r\nabcd",
    ],
    ids=["chunked", "redirect", "no-length"],
)
async def test_unusual_answers_hand_over_to_the_full_client(raw: bytes) -> None:
    pool = RawPool(1)
    async for port in _scripted(_answering(raw)):
        with pytest.raises(NeedsFullClient):
            await _get(pool, port)
        with pytest.raises(NeedsFullClient):  # the connection slot came back
            await _get(pool, port)
    pool.close()


@pytest.mark.parametrize(
    "raw",
    [b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\nabcd", b"SSH-2.0-x\r\n\r\n"],
    ids=["short-body", "not-http"],
)
async def test_short_body_and_garbage_are_connection_errors(raw: bytes) -> None:
    pool = RawPool(1)
    async for port in _scripted(_answering(raw)):
        with pytest.raises(ConnectionError):
            await _get(pool, port)
    pool.close()


def _stalling(raw: bytes) -> Script:
    """A server that answers one request with `raw`, then neither sends more nor closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        await reader.read()  # until the client gives up
        writer.close()

    return answer


@pytest.mark.parametrize(
    "raw",
    [b"", b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\nabcd"],
    ids=["no-head", "half-body"],
)
async def test_an_exchange_that_stalls_times_out_and_frees_its_slot(raw: bytes) -> None:
    pool = RawPool(1, timeout_s=0.05)
    async for port in _scripted(_stalling(raw)):
        for _ in range(2):  # the slot came back: the second request times out too, it does not wait
            with pytest.raises(TimeoutError):
                await _get(pool, port)
        assert not pool._busy
    pool.close()


def test_pool_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        RawPool(1, timeout_s=0)


async def test_no_pre_wake_timer_outlives_its_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rawhttp, "PREWAKE_MARGIN_S", 0.0)  # every request after the first arms one
    armed = []
    loop = asyncio.get_running_loop()
    call_at = loop.call_at

    def recording_call_at(
        when: float, callback: Callable[..., object], *args: object, **kw: Any
    ) -> asyncio.TimerHandle:
        handle = call_at(when, callback, *args, **kw)
        if callback is rawhttp._awake:
            armed.append(handle)
        return handle

    monkeypatch.setattr(loop, "call_at", recording_call_at)
    pool = RawPool(1)
    async for port in _scripted(_answering(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\n\r\nabcd")):
        for _ in range(3):
            assert await _get(pool, port) == b"abcd"
    pool.close()
    assert armed and all(h.cancelled() for h in armed)
