"""What an encoder produces, and decoding one chunk from its compressed bytes.

Every codec's encoder returns an `EncodedLayer` (the layer descriptor's facts plus the
config's diff_id); every lazy reader turns the bytes of `chunk.compressed` into verified
content with `decode_chunk`.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import zstandard

from imageformat.toc import Chunk, ChunkKind, Compression, LayerFormat

MEDIA_TYPE_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_TAR = "application/vnd.oci.image.layer.v1.tar"


class ChunkDecodeError(ValueError):
    """Compressed bytes that do not decode to the chunk the TOC promises."""


@dataclass(frozen=True, kw_only=True)
class EncodedLayer:
    format: LayerFormat
    media_type: str
    digest: str  # sha256 of the compressed blob
    size: int  # compressed blob size
    diff_id: str  # sha256 of the decompressed stream (= the config's rootfs.diff_ids entry)
    uncompressed_size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    toc_digest: str | None = None  # the digest clients use to name the TOC (lazy formats)


_local = threading.local()


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    """One decompressor per thread: building one costs more than decoding a small chunk."""
    d = getattr(_local, "zstd", None)
    if d is None:
        d = _local.zstd = zstandard.ZstdDecompressor()
    return d


def _decode_zstd(data: bytes, limit: int) -> bytes:
    """Decode the frames in `data`, never producing more than limit + 1 bytes (bomb cap)."""
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError:
        declared = -1
    if 0 <= declared <= limit:
        # One frame that declares its size (the decoder holds it to that): decoded in one call,
        # a few times cheaper than a stream reader per chunk. More frames take the general path.
        one = _zstd_decompressor().decompressobj()
        try:
            whole = one.decompress(data)
        except zstandard.ZstdError as e:
            raise ChunkDecodeError(f"corrupt zstd frame: {e}") from None
        if one.eof and not one.unused_data:
            return whole
    reader = _zstd_decompressor().stream_reader(data, read_across_frames=True, read_size=len(data) or 1)
    out = bytearray()
    try:
        while len(out) <= limit:
            piece = reader.read(limit + 1 - len(out))
            if not piece:
                break  # end of input; a truncated frame is caught by the length check of the caller
            out += piece
    except zstandard.ZstdError as e:
        raise ChunkDecodeError(f"corrupt zstd frame: {e}") from None
    return bytes(out)


def _decode_gzip(data: bytes, limit: int) -> bytes:
    out = bytearray()
    rest = data
    while rest and len(out) <= limit:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(rest, limit + 1 - len(out))
        except zlib.error as e:
            raise ChunkDecodeError(f"corrupt gzip member: {e}") from None
        if d.unconsumed_tail:
            break  # hit the limit
        if not d.eof:
            break
        rest = d.unused_data
    return bytes(out)


def decode_chunk(compression: Compression, data: bytes, chunk: Chunk, *, verify: bool = True) -> bytes:
    """The chunk's content from `data` (= the blob bytes of `chunk.compressed`), verified.

    Zero chunks may be decoded without their bytes (`data` empty): their content is known.
    Decoding never produces more than inner_offset + size bytes (decompression-bomb cap).
    """
    if chunk.kind is ChunkKind.ZEROS and not data:
        content = bytes(chunk.size)
    else:
        limit = chunk.inner_offset + chunk.size
        raw = _decode_zstd(data, limit) if compression is Compression.ZSTD else _decode_gzip(data, limit)
        if len(raw) < limit:
            raise ChunkDecodeError(
                f"chunk at file offset {chunk.file_offset} decoded to {len(raw)} bytes, expected >= {limit}"
            )
        content = raw[chunk.inner_offset : limit]
    if verify and chunk.digest is not None:
        got = "sha256:" + hashlib.sha256(content).hexdigest()
        if got != chunk.digest:
            raise ChunkDecodeError(
                f"chunk at file offset {chunk.file_offset}: digest {got} != the TOC's {chunk.digest}"
            )
    return content


__all__ = [
    "MEDIA_TYPE_GZIP",
    "MEDIA_TYPE_TAR",
    "MEDIA_TYPE_ZSTD",
    "ChunkDecodeError",
    "EncodedLayer",
    "decode_chunk",

]
