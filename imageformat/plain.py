"""Plain `tar+gzip` and `tar+zstd` layers (the baselines), and streaming decompression.

Encoders read an uncompressed tar and write one compressed stream, hashing both sides on
the way (blob digest and diff_id). The decompressors accept what every lazy format also is:
a concatenation of gzip members (eStargz) or of zstd frames with skippable frames in
between (zstd:chunked); they stop with `DecompressionBombError` past `max_bytes`.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

from imageformat.digest import Hasher
from imageformat.errors import DecompressionBombError, FormatError, TruncatedLayerError
from imageformat.layer import MEDIA_TYPE_GZIP, MEDIA_TYPE_ZSTD, EncodedLayer
from imageformat.toc import Compression, LayerFormat

BLOCK_BYTES = 1 << 20
DEFAULT_MAX_DECOMPRESSED_BYTES = 16 << 30  # 16 GiB: far above any sane layer, below a bomb


class CorruptStreamError(FormatError):
    """A compressed stream that is not valid gzip/zstd (bad header, bad checksum, garbage)."""


class _CountingHasher:
    def __init__(self) -> None:
        self.hasher = Hasher()
        self.size = 0

    def add(self, data: bytes) -> None:
        self.hasher.update(data)
        self.size += len(data)


def _encode(src: BinaryIO, dst: BinaryIO, compressor: zlib._Compress | zstandard.ZstdCompressionObj,
            fmt: LayerFormat, media_type: str) -> EncodedLayer:
    raw, packed = _CountingHasher(), _CountingHasher()
    while block := src.read(BLOCK_BYTES):
        raw.add(block)
        out = compressor.compress(block)
        if out:
            packed.add(out)
            dst.write(out)
    tail = compressor.flush()
    packed.add(tail)
    dst.write(tail)
    return EncodedLayer(
        format=fmt,
        media_type=media_type,
        digest=packed.hasher.digest(),
        size=packed.size,
        diff_id=raw.hasher.digest(),
        uncompressed_size=raw.size,
    )


def encode_gzip(src: BinaryIO, dst: BinaryIO, *, level: int = 6) -> EncodedLayer:
    """A single-member gzip layer (mtime 0, so the blob is a function of the tar)."""
    return _encode(src, dst, zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS),
                   LayerFormat.GZIP, MEDIA_TYPE_GZIP)


def encode_zstd(src: BinaryIO, dst: BinaryIO, *, level: int = 3) -> EncodedLayer:
    """A single-frame zstd layer with content checksum."""
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
    return _encode(src, dst, cctx.compressobj(), LayerFormat.ZSTD, MEDIA_TYPE_ZSTD)


_GZIP_FEED_BYTES = 65536  # deflate expands at most ~1032x: bounds one call's output


def _iter_gzip(src: BinaryIO) -> Iterator[bytes]:
    """Concatenated gzip members (eStargz is one member per chunk plus a footer member)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    started = False  # inside a member
    while block := src.read(BLOCK_BYTES):
        view = memoryview(block)
        while view.nbytes:
            piece, view = bytes(view[:_GZIP_FEED_BYTES]), view[_GZIP_FEED_BYTES:]
            while piece:
                try:
                    out = d.decompress(piece)
                except zlib.error as e:
                    raise CorruptStreamError(f"corrupt gzip stream: {e}") from None
                started = True
                if out:
                    yield out
                piece = b""
                if d.eof:
                    piece = d.unused_data
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    started = False
    if started:
        raise TruncatedLayerError("gzip stream ends inside a member")


_ZSTD_FEED_BYTES = 4096  # small input slices bound the output of one decompress() call (bombs)


def _iter_zstd(src: BinaryIO) -> Iterator[bytes]:
    """Frames and skippable frames in sequence; a frame cut short is a truncation."""
    dctx = zstandard.ZstdDecompressor()
    d = dctx.decompressobj()
    started = False
    while block := src.read(BLOCK_BYTES):
        view = memoryview(block)
        while view.nbytes:
            piece, view = view[:_ZSTD_FEED_BYTES], view[_ZSTD_FEED_BYTES:]
            try:
                out = d.decompress(piece)
            except zstandard.ZstdError as e:
                raise CorruptStreamError(f"corrupt zstd stream: {e}") from None
            started = True
            if out:
                yield out
            while d.eof:
                rest = d.unused_data
                d = dctx.decompressobj()
                started = False
                if not rest:
                    break
                try:
                    out = d.decompress(rest)
                except zstandard.ZstdError as e:
                    raise CorruptStreamError(f"corrupt zstd stream: {e}") from None
                started = True
                if out:
                    yield out
    if started:
        raise TruncatedLayerError("zstd stream ends inside a frame")


def iter_decompressed(compression: Compression, src: BinaryIO, *,
                      max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> Iterator[bytes]:
    """The decompressed stream of a whole blob, in blocks; at most `max_bytes` bytes."""
    it = _iter_zstd(src) if compression is Compression.ZSTD else _iter_gzip(src)
    total = 0
    for block in it:
        total += len(block)
        if total > max_bytes:
            raise DecompressionBombError(f"decompressed stream exceeds the cap of {max_bytes} bytes")
        yield block


class DecompressedReader(io.RawIOBase):
    """A read-only file over `iter_decompressed`, hashing everything it hands out."""

    def __init__(self, compression: Compression, src: BinaryIO, *,
                 max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> None:
        super().__init__()
        self._it = iter_decompressed(compression, src, max_bytes=max_bytes)
        self._buf = b""
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            nxt = next(self._it, None)
            if nxt is None:
                return 0
            self._buf = nxt
        n = min(len(b), len(self._buf))
        piece, self._buf = self._buf[:n], self._buf[n:]
        b[:n] = piece
        self._hash.update(piece)
        self.size += n
        return n

    def drain(self) -> None:
        """Read (and hash) everything still unread, e.g. tar padding after end-of-archive."""
        while self.read(BLOCK_BYTES):
            pass

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def digest_with_zeros(self, extra_bytes: int) -> str:
        """The digest the stream would have with `extra_bytes` zero bytes appended."""
        h = self._hash.copy()
        h.update(bytes(extra_bytes))
        return "sha256:" + h.hexdigest()


def decompress_to(compression: Compression, src: BinaryIO, dst: BinaryIO, *,
                  max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> tuple[str, int]:
    """Decompress a whole blob into `dst`; returns (diff_id, size)."""
    h = _CountingHasher()
    for block in iter_decompressed(compression, src, max_bytes=max_bytes):
        h.add(block)
        dst.write(block)
    return h.hasher.digest(), h.size


__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "CorruptStreamError",
    "DecompressedReader",
    "decompress_to",
    "encode_gzip",
    "encode_zstd",
    "iter_decompressed",
]
