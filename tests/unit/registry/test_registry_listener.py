"""start_registry's own listener (aiohttp's protocol wrapped to note request arrival): it serves
keep-alive requests and stops accepting when the registry stops."""

from __future__ import annotations

import asyncio

import pytest

from registry_mock.app import start_registry
from registry_mock.config import LinkSpec, RegistrySpec


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(v)
        for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
        if k.lower() == b"content-length"
    )
    await reader.readexactly(length)
    return head.split(b" ", 2)[1]


async def test_keep_alive_requests_then_stop() -> None:
    reg = await start_registry(RegistrySpec(link=LinkSpec(latency_s=0.001)))
    reader, writer = await asyncio.open_connection(reg.host, reg.port)
    assert [await _get(reader, writer, p) for p in ("/v2/", "/v2/nope/manifests/x", "/v2/")] == [
        b"200",
        b"404",
        b"200",
    ]
    assert [r["status"] for r in reg.records] == [200, 404, 200]
    assert all(r["duration_s"] >= 0 for r in reg.records)
    writer.close()
    await reg.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection(reg.host, reg.port)
