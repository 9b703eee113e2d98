"""Sending response bodies over the emulated link: sendfile fast path, paced slices, body faults.

A body is a sequence of pieces: literal bytes (multipart part headers, manifests) or ranges of a blob.
Unshaped and fault-free bodies of on-disk blobs go out with `loop.sendfile` (zero copy); otherwise pieces
are cut into slices, each paced by the link (registry_mock.shaping) before it is written. RESET/TRUNCATE
cut the body after a number of bytes and kill the connection; CORRUPT flips chosen bytes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from imageformat.byterange import ByteRange

from .config import FaultKind
from .faults import NO_FAULTS, ActiveFaults
from .shaping import Link, Transfer
from .storage import Storage

Piece = bytes | ByteRange


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
    """Prepare `response` and send `pieces`; return the number of body bytes written."""
    total = body_length(pieces)
    async with link.transfer() as t:
        await response.prepare(request)
        path = source.storage.blob_path(source.digest) if source is not None else None
        try:
            if not t.shaped and not faults and path is not None and total > 0:
                sent = await _sendfile_pieces(request, response, pieces, path)
            else:
                sent = await _sliced(request, response, pieces, source, t, faults, total, path)
        except ConnectionError as e:
            raise ClientGone(f"client went away: {e}", response, t.bytes_paced) from None
    return sent


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
