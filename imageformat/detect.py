"""Which format a layer is, one parser per kind, and one encoder per `LayerFormat`.

`detect_format` decides from the media type, the descriptor annotations and the blob's last
bytes (the footer) — the same evidence a registry client has. `read_layer_toc` is the single
dispatch from that decision to the format's TOC parser; `ENCODERS` is the single table from a
`LayerFormat` to the function that writes it. Nothing else in the project switches on format
names.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import BinaryIO

import zstandard

from imageformat.byterange import ByteRange
from imageformat.errors import FormatError, TruncatedLayerError
from imageformat.estargz import encode_estargz
from imageformat.estargz_toc import (
    ESTARGZ_FOOTER_BYTES,
    TOC_DIGEST_ANNOTATION,
    ZSTD_POSITION_ANNOTATION,
    locate_stargz_zstd_toc,
    looks_like_jtoc,
    parse_estargz_footer,
    read_estargz_toc,
    read_stargz_zstd_toc,
)
from imageformat.layer import MEDIA_TYPE_GZIP, MEDIA_TYPE_TAR, MEDIA_TYPE_ZSTD, EncodedLayer
from imageformat.plain import encode_gzip, encode_zstd
from imageformat.toc import Compression, LayerFormat, Toc

Fetch = Callable[[ByteRange], bytes]
Encoder = Callable[[BinaryIO, BinaryIO], EncodedLayer]
TAIL_BYTES = 128  # enough for every footer (51 eStargz, 48/64/72 zstd:chunked)
GZIP_MEDIA_TYPES = {MEDIA_TYPE_GZIP, "application/vnd.docker.image.rootfs.diff.tar.gzip"}
ZSTD_MEDIA_TYPES = {MEDIA_TYPE_ZSTD, "application/vnd.docker.image.rootfs.diff.tar.zstd"}
NEW_ZSTD_PREFIX = "io.github.containers.zstd-chunked."
OLD_ZSTD_PREFIX = "io.containers.zstd-chunked."
GENERATIONS = {
    LayerFormat.ZSTD_CHUNKED: "b",
    LayerFormat.ZSTD_CHUNKED_LEGACY: "a",
    LayerFormat.ESTARGZ: "estargz",
    LayerFormat.STARGZ_ZSTDCHUNKED: "stargz-zstd",
    LayerFormat.GZIP: "-",
    LayerFormat.ZSTD: "-",
}


class UnsupportedLayerError(FormatError):
    """A layer media type lazylab does not read (uncompressed tar, foreign media types)."""


def compression_of(media_type: str) -> Compression:
    if media_type in GZIP_MEDIA_TYPES:
        return Compression.GZIP
    if media_type in ZSTD_MEDIA_TYPES:
        return Compression.ZSTD
    if media_type == MEDIA_TYPE_TAR:
        raise UnsupportedLayerError("uncompressed tar layers are not supported; convert to gzip or zstd")
    raise UnsupportedLayerError(f"unsupported layer media type {media_type!r}")


def as_fetch(blob: BinaryIO | Fetch) -> Fetch:
    """A range reader over a seekable file (or the callable itself)."""
    if callable(blob):
        return blob
    f = blob

    def fetch(r: ByteRange) -> bytes:
        f.seek(r.start)
        return f.read(r.length)

    return fetch


def _tail(fetch: Fetch, blob_size: int) -> bytes:
    return fetch(ByteRange(max(0, blob_size - TAIL_BYTES), blob_size))


def _zstd_toc_is_jtoc(fetch: Fetch, blob_size: int, tail: bytes, annotations: Mapping[str, str]) -> bool:
    """Is the TOC behind a 40-byte GnUlInUx footer stargz-snapshotter's JTOC (vs c/storage gen a)?"""
    try:
        off, clen, ulen = locate_stargz_zstd_toc(blob_size, tail, annotations)
        packed = fetch(ByteRange(off, off + min(clen, 1 << 20)))
        head = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(packed)).read(min(ulen, 4096))
    except (FormatError, zstandard.ZstdError):
        return False
    return looks_like_jtoc(head)


def detect_format(media_type: str, annotations: Mapping[str, str], blob: BinaryIO | Fetch,
                  blob_size: int) -> LayerFormat:
    """The layer's format from its descriptor and footer (formats spec §1.1, §1.3, §3.2, §3.7)."""
    compression = compression_of(media_type)
    fetch = as_fetch(blob)
    tail = _tail(fetch, blob_size)
    if compression is Compression.GZIP:
        if TOC_DIGEST_ANNOTATION in annotations:
            return LayerFormat.ESTARGZ
        try:
            parse_estargz_footer(tail)
        except FormatError:
            return LayerFormat.GZIP
        return LayerFormat.ESTARGZ
    if any(k.startswith(NEW_ZSTD_PREFIX) for k in annotations):
        return LayerFormat.ZSTD_CHUNKED
    if ZSTD_POSITION_ANNOTATION in annotations:
        if TOC_DIGEST_ANNOTATION in annotations:
            return LayerFormat.STARGZ_ZSTDCHUNKED
        return LayerFormat.ZSTD_CHUNKED_LEGACY
    gen_1_47 = len(tail) >= 24 and tail[-24:-16] == b"GnUlInUx" and not any(tail[-16:])
    if tail.endswith(b"GNUlInUx") or gen_1_47:
        return LayerFormat.ZSTD_CHUNKED
    if tail.endswith(b"GnUlInUx"):
        if _zstd_toc_is_jtoc(fetch, blob_size, tail, annotations):
            return LayerFormat.STARGZ_ZSTDCHUNKED
        return LayerFormat.ZSTD_CHUNKED_LEGACY
    return LayerFormat.ZSTD


def _read_zstd_chunked_toc(fetch: Fetch, blob_size: int, annotations: Mapping[str, str]) -> Toc:
    from imageformat.zstdchunked_toc import locate_zstd_chunked_toc, parse_zstd_chunked_toc

    location = locate_zstd_chunked_toc(annotations, blob_size, _tail(fetch, blob_size))
    toc_range: ByteRange = location.toc
    toc_bytes = fetch(toc_range)
    if len(toc_bytes) != toc_range.length:
        raise TruncatedLayerError(f"read {len(toc_bytes)} TOC bytes, expected {toc_range.length}")
    expected = annotations.get(NEW_ZSTD_PREFIX + "manifest-checksum") or annotations.get(
        OLD_ZSTD_PREFIX + "manifest-checksum")
    return parse_zstd_chunked_toc(location, toc_bytes, expected_digest=expected, blob_size=blob_size)


_PARSERS: dict[LayerFormat, Callable[[Fetch, int, Mapping[str, str]], Toc]] = {
    LayerFormat.ESTARGZ: read_estargz_toc,
    LayerFormat.STARGZ_ZSTDCHUNKED: read_stargz_zstd_toc,
    LayerFormat.ZSTD_CHUNKED: _read_zstd_chunked_toc,
    LayerFormat.ZSTD_CHUNKED_LEGACY: _read_zstd_chunked_toc,
}


def read_layer_toc(media_type: str, annotations: Mapping[str, str], blob: BinaryIO | Fetch,
                   blob_size: int) -> Toc | None:
    """The verified TOC of a lazy-pullable layer, or None for a plain gzip/zstd layer."""
    if blob_size < ESTARGZ_FOOTER_BYTES - 11:
        raise TruncatedLayerError(f"layer blob of {blob_size} bytes is too short to hold a footer")
    fetch = as_fetch(blob)
    fmt = detect_format(media_type, annotations, fetch, blob_size)
    parser = _PARSERS.get(fmt)
    return None if parser is None else parser(fetch, blob_size, annotations)


def _zstd_chunked(generation: str) -> Encoder:
    def encode(src: BinaryIO, dst: BinaryIO) -> EncodedLayer:
        from imageformat.zstdchunked import encode_zstd_chunked

        return encode_zstd_chunked(src, dst, generation=generation)  # type: ignore[arg-type]

    return encode


ENCODERS: dict[LayerFormat, Encoder] = {
    LayerFormat.GZIP: encode_gzip,
    LayerFormat.ZSTD: encode_zstd,
    LayerFormat.ESTARGZ: encode_estargz,
    LayerFormat.ZSTD_CHUNKED: _zstd_chunked("b"),
    LayerFormat.ZSTD_CHUNKED_LEGACY: _zstd_chunked("a"),
}
BUILD_FORMATS = tuple(ENCODERS)


def parse_format(name: str) -> LayerFormat:
    """A `--format` value -> LayerFormat (only the ones lazylab can write)."""
    try:
        fmt = LayerFormat(name)
    except ValueError:
        fmt = None
    if fmt not in ENCODERS:
        choices = ", ".join(f.value for f in BUILD_FORMATS)
        raise UnsupportedLayerError(f"unknown layer format {name!r} (choose one of: {choices})")
    assert fmt is not None
    return fmt


def encode_layer(fmt: LayerFormat, src: BinaryIO, dst: BinaryIO) -> EncodedLayer:
    """Encode the (seekable) tar `src` as `fmt` into `dst`."""
    return ENCODERS[fmt](src, dst)


__all__ = [
    "BUILD_FORMATS",
    "ENCODERS",
    "GENERATIONS",
    "UnsupportedLayerError",
    "as_fetch",
    "compression_of",
    "detect_format",
    "encode_layer",
    "parse_format",
    "read_layer_toc",
]
