"""zstd frame plumbing shared by the zstd:chunked encoder and decoder.

Skippable frames as containers/storage writes them; `FrameSink`, which compresses frames in
parallel batches on a worker thread and writes them in order (recording each frame's blob
range); `source_view`, a zero-copy view of the input tar; size-capped decompression
(`decompress_capped` / `decompress_upto`) that never produces more than the cap + 1 bytes.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import BinaryIO

import zstandard

from imageformat.errors import DecompressionBombError, TocError

SKIPPABLE_MAGIC = b"\x50\x2a\x4d\x18"
BATCH_BYTES = 16 << 20  # frame inputs per compression batch


def skippable_frame(payload: bytes) -> bytes:
    return SKIPPABLE_MAGIC + struct.pack("<I", len(payload)) + payload


class FrameSink:
    """Collects frame inputs in order; a background thread compresses batches (in parallel, with
    `multi_compress_to_buffer`) and writes them while the caller chunks and hashes the next files.
    """

    def __init__(self, dst: BinaryIO, level: int, threads: int) -> None:
        self.dst = dst
        self.cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
        self.threads = threads
        self.pending: list[bytes | bytearray | memoryview] = []
        self.pending_bytes = 0
        self.frames_added = 0
        self.starts: list[int] = []  # written by the worker only
        self.ends: list[int] = []
        self.pos = 0
        self.hasher = hashlib.sha256()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zstd-frames")
        self._inflight: list[Future[None]] = []

    def add(self, data: memoryview | bytes) -> int:
        assert len(data) > 0, "no empty frames (formats.md §1.4)"
        self.pending.append(data)
        self.pending_bytes += len(data)
        self.frames_added += 1
        if self.pending_bytes >= BATCH_BYTES:
            self.flush()
        return self.frames_added - 1

    def _write(self, data: bytes | memoryview) -> None:
        self.dst.write(data)
        self.hasher.update(data)
        self.pos += len(data)

    def _compress_write(self, batch: list[bytes | bytearray | memoryview]) -> None:
        if len(batch) == 1 or self.threads == 1:
            frames: list[bytes] = [self.cctx.compress(d) for d in batch]
        else:
            coll = self.cctx.multi_compress_to_buffer(batch, threads=self.threads)
            frames = [coll[i].tobytes() for i in range(len(coll))]
        batch.clear()
        for fr in frames:
            self.starts.append(self.pos)
            self._write(fr)
            self.ends.append(self.pos)

    def flush(self) -> None:
        """Hand the pending frames to the worker (at most two batches in flight)."""
        if not self.pending:
            return
        batch, self.pending, self.pending_bytes = self.pending, [], 0
        self._inflight.append(self._pool.submit(self._compress_write, batch))
        while len(self._inflight) > 2:
            self._inflight.pop(0).result()

    def drain(self) -> None:
        """Wait until every frame handed over is written (re-raises the worker's errors)."""
        self.flush()
        while self._inflight:
            self._inflight.pop(0).result()

    def close(self) -> None:
        self.pending = []
        for f in self._inflight:
            f.cancel()
        self._pool.shutdown(wait=True)
        self._inflight = []

    def write_raw(self, data: bytes) -> int:
        self.drain()
        start = self.pos
        self._write(data)
        return start


@contextmanager
def source_view(src: BinaryIO) -> Iterator[memoryview]:
    """The whole input as a zero-copy memoryview where possible (mmap / BytesIO buffer)."""
    if isinstance(src, io.BytesIO):
        view = src.getbuffer()
        try:
            yield view
        finally:
            _release(view)
        return
    try:
        fd = src.fileno()
        size = os.fstat(fd).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        fd, size = -1, 0
    if fd >= 0 and size > 0:
        mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        view = memoryview(mm)
        try:
            yield view
        finally:
            if _release(view):
                try:
                    mm.close()
                except BufferError:
                    pass  # slices still referenced by a traceback: the GC closes it
        return
    src.seek(0)
    data = src.read()
    yield memoryview(data)


def _release(view: memoryview) -> bool:
    """Release `view`; False if slices of it are still alive (an exception's traceback can hold
    them), in which case the garbage collector releases it later."""
    try:
        view.release()
    except BufferError:
        return False
    return True


def decompress_capped(data: bytes, size: int, what: str) -> bytes:
    """Exactly `size` bytes from the zstd frame(s) in `data`; never more than size+1 are produced."""
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        out = reader.read(size + 1)
        while len(out) <= size:
            more = reader.read(size + 1 - len(out))
            if not more:
                break
            out += more
    except zstandard.ZstdError as e:
        raise TocError(f"{what} is not valid zstd: {e}") from None
    if len(out) > size:
        raise DecompressionBombError(f"{what} decompresses to more than the declared {size} bytes")
    if len(out) != size:
        raise TocError(f"{what} decompressed to {len(out)} bytes, declared {size}")
    return out


def decompress_upto(data: bytes, cap: int, what: str) -> bytes:
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        out = bytearray()
        while len(out) <= cap:
            more = reader.read(min(1 << 20, cap + 1 - len(out)))
            if not more:
                break
            out += more
    except zstandard.ZstdError as e:
        raise TocError(f"{what} is not valid zstd: {e}") from None
    if len(out) > cap:
        raise DecompressionBombError(f"{what} decompresses to more than {cap} bytes")
    return bytes(out)


__all__ = [
    "BATCH_BYTES",
    "SKIPPABLE_MAGIC",
    "FrameSink",
    "decompress_capped",
    "decompress_upto",
    "skippable_frame",
    "source_view",
]
