"""Sending response bodies over the emulated link: sendfile fast path, paced slices, body faults.

A body is a sequence of pieces: literal bytes (multipart part headers, manifests) or ranges of a blob.
Unshaped and fault-free bodies of on-disk blobs go out with `loop.sendfile` (zero copy), or as one
buffer read before the latency hold when small; otherwise pieces are cut into slices, each paced by the
link (registry_mock.shaping) before it is written. RESET/TRUNCATE cut the body after a number of bytes
and kill the connection; CORRUPT flips chosen bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from imageformat.byterange import ByteRange

from .config import FaultKind
from .faults import NO_FAULTS, ActiveFaults
from .shaping import Link, Transfer, sleep_until
from .storage import Storage

Piece = bytes | ByteRange

# When the response may start: request start + the link's latency. Set by the pipeline middleware,
# waited out (once) right before the first byte goes out, so that the registry's own processing of
# the request (routing, auth, storage lookups, range planning, reading a small body, building the
# headers) runs inside the emulated latency instead of adding to it.
RESPONSE_NOT_BEFORE = web.RequestKey("registry_response_not_before", float)


async def hold_response(request: web.Request) -> None:
    """Wait until the response may start (no-op once waited, or without added latency)."""
    deadline = request.get(RESPONSE_NOT_BEFORE)
    if deadline is not None:
        del request[RESPONSE_NOT_BEFORE]
        await sleep_until(deadline)


class PacedResponse(web.StreamResponse):
    """Headers go out with the first body write, not alone at `prepare()`: one send and one client
    wake-up fewer per response (measured ~0.7 ms per loopback send on a loaded 2-core host; 0.39 ms
    from headers to body for a small unshaped range), and `prepare()` may run before the latency
    hold. Only for bodies written through `response.write` first: paced slices, or unshaped bodies
    small enough to be copied into one buffer; a large unshaped range goes out with sendfile, which
    needs the headers flushed first."""

    _send_headers_immediately = False


@dataclass(frozen=True)
class BlobSource:
    storage: Storage
    digest: str


class BodyCut(Exception):
    """The body was cut on purpose (RESET/TRUNCATE fault); the connection is gone."""

    def __init__(self, message: str, response: web.StreamResponse, sent: int) -> None:
        super().__init__(message)
        self.response = response
        self.sent = sent


class ClientGone(BodyCut):
    """The client closed the connection mid-body (not a server error: logged as status 499)."""


def body_length(pieces: Sequence[Piece]) -> int:
    return sum(len(p) if isinstance(p, bytes) else p.length for p in pieces)


async def send_body(
    request: web.Request,
    response: web.StreamResponse,
    pieces: Sequence[Piece],
    *,
    source: BlobSource | None,
    link: Link,
    faults: ActiveFaults = NO_FAULTS,
) -> int:
    """Wait out the latency hold, prepare `response` and send `pieces`; return the body bytes written.

    Whatever does not depend on the clock (blob path, a small body's bytes, the header block of a
    PacedResponse) is done before the hold, so that only the write itself (and its pacing) follows it."""
    total = body_length(pieces)
    path = source.storage.blob_path(source.digest) if source is not None else None
    fast = not link.spec.shaped and not faults and total > 0
    small = _small_body(pieces, source, path) if 0 < total < SENDFILE_MIN_BYTES else None
    if small is not None and not fast:  # read now: after the hold only the pacing and the writes remain
        pieces, source, path, small = [small], None, None, None
    early = isinstance(response, PacedResponse)
    if early:
        await response.prepare(request)  # builds the header block; it goes out with the first write
    await hold_response(request)
    async with link.transfer() as t:
        if not early:
            await response.prepare(request)
        try:
            if small is not None:
                await response.write(small)
                sent = len(small)
            elif fast and path is not None:
                sent = await _sendfile_pieces(request, response, pieces, path)
            else:
                sent = await _sliced(request, response, pieces, source, t, faults, total, path)
        except ConnectionError as e:
            raise ClientGone(f"client went away: {e}", response, t.bytes_paced) from None
    return sent


def _small_body(pieces: Sequence[Piece], source: BlobSource | None, path: Path | None) -> bytes:
    """The whole body as one buffer: literal pieces and blob ranges (from the file when on disk)."""
    out: list[bytes | memoryview] = []
    with open(path, "rb") if path is not None else contextlib.nullcontext() as f:
        for p in pieces:
            if isinstance(p, bytes):
                out.append(p)
            elif f is not None:
                out.append(os.pread(f.fileno(), p.length, p.start))
            else:
                assert source is not None, "a blob range without a blob"
                out.append(source.storage.read_blob(source.digest, p.start, p.stop))
    return b"".join(out)


SENDFILE_MIN_BYTES = 256 << 10  # smaller pieces are copied into one buffer instead (multipart parts)
BUFFER_FLUSH_BYTES = 1 << 20


async def _sendfile_pieces(
    request: web.Request, response: web.StreamResponse, pieces: Sequence[Piece], path: os.PathLike[str] | str
) -> int:
    """Large ranges go out with zero-copy sendfile; small pieces are batched into ~1 MiB writes."""
    loop = asyncio.get_running_loop()
    transport = request.transport
    sent = 0
    buf = bytearray()
    with open(path, "rb") as f:
        fd = f.fileno()
        for p in pieces:
            if isinstance(p, bytes):
                buf += p
            elif p.length < SENDFILE_MIN_BYTES:
                buf += os.pread(fd, p.length, p.start)
            else:
                if buf:
                    await response.write(bytes(buf))
                    sent += len(buf)
                    buf.clear()
                if transport is None or transport.is_closing():
                    raise ConnectionResetError("client went away")
                try:
                    await loop.sendfile(transport, f, p.start, p.length)
                except NotImplementedError:
                    for off in range(p.start, p.stop, BUFFER_FLUSH_BYTES):
                        await response.write(os.pread(fd, min(BUFFER_FLUSH_BYTES, p.stop - off), off))
                sent += p.length
                continue
            if len(buf) >= BUFFER_FLUSH_BYTES:
                await response.write(bytes(buf))
                sent += len(buf)
                buf.clear()
        if buf:
            await response.write(bytes(buf))
            sent += len(buf)
    return sent


async def _sliced(
    request: web.Request,
    response: web.StreamResponse,
    pieces: Sequence[Piece],
    source: BlobSource | None,
    t: Transfer,
    faults: ActiveFaults,
    total: int,
    path: os.PathLike[str] | str | None,
) -> int:
    cut = faults.cut_after(total) if faults else None
    corrupt = faults.corrupt_positions(total) if faults else []
    fd = os.open(path, os.O_RDONLY) if path is not None else None
    body_pos = 0
    sent = 0
    try:
        for p in pieces:
            plen = len(p) if isinstance(p, bytes) else p.length
            off = 0
            while off < plen:
                n = min(t.slice_bytes(), plen - off)
                if cut is not None and body_pos + n > cut:
                    n = cut - body_pos
                if isinstance(p, bytes):
                    data: bytes | bytearray | memoryview = p[off : off + n]
                elif fd is not None:
                    data = os.pread(fd, n, p.start + off)
                else:
                    assert source is not None
                    data = source.storage.read_blob(source.digest, p.start + off, p.start + off + n)
                if corrupt and corrupt[0] < body_pos + n:
                    data = bytearray(data)
                    while corrupt and corrupt[0] < body_pos + n:
                        data[corrupt.pop(0) - body_pos] ^= 0xFF
                await t.pace(n)
                if n:
                    await response.write(data)
                off += n
                body_pos += n
                sent += n
                if cut is not None and body_pos >= cut:
                    await _kill(request, response, reset=FaultKind.RESET in faults)
                    raise BodyCut(f"body cut after {sent} of {total} bytes", response, sent)
    finally:
        if fd is not None:
            os.close(fd)
    return sent


async def _kill(request: web.Request, response: web.StreamResponse, *, reset: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()  # asyncio flushes what is buffered, then sends FIN: a short body
