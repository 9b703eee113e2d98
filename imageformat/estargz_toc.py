"""eStargz decoder: footer, TOC location, TOC verification and the JTOC -> `Toc` model (spec §3).

An eStargz TOC is the tar entry `stargz.index.json` inside its own gzip member at
[tocOffset, blob_size - 51); tocOffset is the hex number in the footer's FEXTRA field. The
JSON is authenticated by `containerd.io/snapshot/stargz/toc.digest` (sha256 of the
uncompressed JSON). stargz-snapshotter's zstd variant (§3.7) carries the same JSON, zstd
compressed, in a skippable frame located by a 40-byte `GnUlInUx` footer. Both are turned into
the shared model; every decoded size is capped, every offset is checked against the blob.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import json
import re
import struct
import tarfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import zstandard

from imageformat.byterange import ByteRange
from imageformat.errors import (
    DecompressionBombError,
    DuplicateEntryError,
    FooterError,
    TocDigestError,
    TocError,
    TocTooLargeError,
    TruncatedLayerError,
    UnsafePathError,
)
from imageformat.toc import (
    Chunk,
    ChunkKind,
    Compression,
    EntryType,
    LayerFormat,
    Toc,
    TocEntry,
    normalize_path,
)
from imageformat.tree import ESTARGZ_TOC_NAME, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK

ESTARGZ_FOOTER_BYTES = 51
LEGACY_STARGZ_FOOTER_BYTES = 47
STARGZ_ZSTD_FOOTER_BYTES = 48  # 8-byte skippable header + 40-byte payload
MAX_TOC_BYTES = 150 << 20  # containers/storage >= 1.58
MAX_ENTRIES = 10_000_000
TOC_DIGEST_ANNOTATION = "containerd.io/snapshot/stargz/toc.digest"
ZSTD_CHECKSUM_ANNOTATION = "io.containers.zstd-chunked.manifest-checksum"
ZSTD_POSITION_ANNOTATION = "io.containers.zstd-chunked.manifest-position"
_FOOTER_RE = re.compile(
    rb"\A\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x1a\x00SG\x16\x00([0-9a-f]{16})STARGZ"
    rb"\x01\x00\x00\xff\xff\x00{8}\Z"
)
_LEGACY_RE = re.compile(
    rb"\A\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x16\x00([0-9a-f]{16})STARGZ\x01\x00\x00\xff\xff\x00{8}\Z"
)
_TYPES = {t.value: t for t in EntryType}
Fetch = Callable[[ByteRange], bytes]


def parse_estargz_footer(tail: bytes) -> tuple[int, int]:
    """(tocOffset, footer size) from the blob's last bytes (>= 51, or 47 for legacy stargz)."""
    if len(tail) >= ESTARGZ_FOOTER_BYTES and (m := _FOOTER_RE.match(tail[-ESTARGZ_FOOTER_BYTES:])):
        return int(m.group(1), 16), ESTARGZ_FOOTER_BYTES
    legacy = LEGACY_STARGZ_FOOTER_BYTES
    if len(tail) >= legacy and (m := _LEGACY_RE.match(tail[-legacy:])):
        return int(m.group(1), 16), LEGACY_STARGZ_FOOTER_BYTES
    raise FooterError("no eStargz footer (51-byte gzip member with an 'SG' extra field) at the blob's end")


def locate_estargz_toc(blob_size: int, tail: bytes) -> ByteRange:
    """Blob range of the TOC member: [tocOffset, blob_size - footer)."""
    toc_offset, footer = parse_estargz_footer(tail)
    end = blob_size - footer
    if not 0 <= toc_offset < end:
        raise FooterError(f"footer TOC offset {toc_offset} outside the blob (TOC must end at {end})")
    if end - toc_offset > MAX_TOC_BYTES:
        raise TocTooLargeError(f"compressed TOC of {end - toc_offset} bytes exceeds {MAX_TOC_BYTES}")
    return ByteRange(toc_offset, end)


def _gunzip_capped(data: bytes, cap: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, cap + 1)
    except zlib.error as e:
        raise TocError(f"TOC gzip member is corrupt: {e}") from None
    if len(out) > cap:
        raise DecompressionBombError(f"TOC member decompresses to more than {cap} bytes")
    if not d.eof:
        raise TruncatedLayerError("TOC gzip member is truncated")
    return out


def toc_json_from_member(member: bytes) -> bytes:
    """The JSON bytes of the `stargz.index.json` tar entry inside the TOC member."""
    raw = _gunzip_capped(member, MAX_TOC_BYTES + 8 * 512 + 1024)
    try:
        ti = tarfile.TarInfo.frombuf(raw[:512], "utf-8", "surrogateescape")
    except tarfile.TarError as e:
        raise TocError(f"TOC member does not start with a tar header: {e}") from None
    if ti.name != ESTARGZ_TOC_NAME or not ti.isreg():
        raise TocError(f"TOC member holds {ti.name!r}, expected the regular file {ESTARGZ_TOC_NAME!r}")
    if ti.size > MAX_TOC_BYTES:
        raise TocTooLargeError(f"TOC JSON of {ti.size} bytes exceeds {MAX_TOC_BYTES}")
    if 512 + ti.size > len(raw):
        raise TruncatedLayerError(f"TOC entry declares {ti.size} bytes, member holds {len(raw) - 512}")
    return raw[512 : 512 + ti.size]


def _check_digest(data: bytes, expected: str | None, what: str) -> str:
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if expected is not None and got != expected:
        raise TocDigestError(f"{what}: sha256 {got} != annotation {expected}")
    return got


def _int(e: Mapping[str, Any], key: str, i: int) -> int:
    v = e.get(key, 0)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise TocError(f"TOC entry {i}: {key} {v!r} is not a non-negative integer")
    return v


def _str(e: Mapping[str, Any], key: str, i: int) -> str:
    v = e.get(key, "")
    if not isinstance(v, str):
        raise TocError(f"TOC entry {i}: {key} {v!r} is not a string")
    return v


def _mtime_ns(value: str, i: int) -> int | None:
    if not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TocError(f"TOC entry {i}: modtime {value!r} is not RFC 3339") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    ns = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return None if ns == 0 or t.year <= 1 else ns


def _xattrs(value: Any, i: int) -> dict[str, bytes]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TocError(f"TOC entry {i}: xattrs must be an object")
    out = {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise TocError(f"TOC entry {i}: xattr {k!r} value is not a string")
        try:
            out[str(k)] = base64.b64decode(v, validate=True)
        except binascii.Error:
            raise TocError(f"TOC entry {i}: xattr {k!r} is not base64") from None
    return out


def jtoc_to_toc(obj: Any, *, fmt: LayerFormat, compression: Compression, data_end: int, digest: str,
                toc_range: ByteRange, blob_size: int | None) -> Toc:
    """Build the shared model from a parsed eStargz JTOC; `data_end` bounds every payload range."""
    if not isinstance(obj, dict) or not isinstance(obj.get("entries"), list):
        raise TocError("TOC JSON is not an object with an 'entries' list")
    if obj.get("version") != 1:
        raise TocError(f"TOC version {obj.get('version')!r} is not 1")
    raw = obj["entries"]
    if len(raw) > MAX_ENTRIES:
        raise TocTooLargeError(f"TOC lists {len(raw)} entries (limit {MAX_ENTRIES})")
    for i, e in enumerate(raw):
        if not isinstance(e, dict):
            raise TocError(f"TOC entry {i} is not an object")
    # Where each payload member ends: the next larger member start, or the end of the data.
    starts = sorted({_int(e, "offset", i) for i, e in enumerate(raw)
                     if e.get("type") in ("reg", "chunk") and "offset" in e})
    if starts and starts[-1] >= data_end:
        raise TocError(f"TOC offset {starts[-1]} is past the end of the layer data ({data_end})")
    next_start = dict(zip(starts, [*starts[1:], data_end], strict=False))
    entries: list[TocEntry] = []
    seen_pieces: set[tuple[int, int]] = set()
    seen_paths: set[str] = set()
    cur: dict[str, Any] | None = None  # the reg entry being filled, as keyword arguments
    chunks: list[Chunk] = []

    def finish() -> None:
        nonlocal cur, chunks
        if cur is None:
            return
        covered = sum(c.size for c in chunks)
        if covered != cur["size"]:
            raise TocError(f"TOC chunks of {cur['name']!r} cover {covered} bytes, size is {cur['size']}")
        entries.append(TocEntry(**cur, chunks=tuple(chunks)))
        cur, chunks = None, []

    for i, e in enumerate(raw):
        etype, name = _str(e, "type", i), _str(e, "name", i)
        try:
            path = normalize_path(name)
        except ValueError as err:
            raise UnsafePathError(f"TOC entry {i}: {err}") from None
        if etype == "chunk":
            if cur is None or cur["path"] != path:
                raise TocError(f"TOC entry {i}: chunk of {name!r} does not follow its reg entry")
        else:
            finish()
            if path in seen_paths:
                raise DuplicateEntryError(f"TOC entry {i}: {name!r} appears twice")
            seen_paths.add(path)
            if etype not in _TYPES:
                raise TocError(f"TOC entry {i}: unknown type {etype!r}")
            link = _str(e, "linkName", i)
            if etype == "hardlink":
                try:
                    normalize_path(link)
                except ValueError:
                    raise UnsafePathError(f"TOC entry {i}: hardlink target {link!r} leaves the layer") \
                        from None
            kw: dict[str, Any] = dict(
                path=path, name=name, type=_TYPES[etype], mode=_int(e, "mode", i) & 0o7777,
                uid=_int(e, "uid", i), gid=_int(e, "gid", i), size=_int(e, "size", i),
                mtime_ns=_mtime_ns(_str(e, "modtime", i), i), link_name=link,
                dev_major=_int(e, "devMajor", i), dev_minor=_int(e, "devMinor", i),
                xattrs=_xattrs(e.get("xattrs"), i), digest=_str(e, "digest", i) or None,
            )
            if etype != "reg":
                entries.append(TocEntry(**kw))  # type: ignore[arg-type]
                continue
            cur = kw
            if kw["size"] == 0:
                continue
        # a payload piece: the reg entry itself or one of its chunk entries
        assert cur is not None
        if "offset" not in e:
            raise TocError(f"TOC entry {i}: payload of {name!r} has no offset")
        offset, inner = _int(e, "offset", i), _int(e, "innerOffset", i)
        if (offset, inner) in seen_pieces:
            raise TocError(f"TOC entry {i}: two payload pieces at blob offset {offset}")
        seen_pieces.add((offset, inner))
        file_off = _int(e, "chunkOffset", i)
        done = sum(c.size for c in chunks)
        if file_off != done:
            raise TocError(f"TOC entry {i}: chunk of {name!r} at file offset {file_off}, expected {done}")
        size = _int(e, "chunkSize", i) or (cur["size"] - done)
        if size <= 0 or done + size > cur["size"]:
            raise TocError(f"TOC entry {i}: chunk of {name!r} of {size} bytes overruns the file")
        piece_digest = _str(e, "chunkDigest", i) or None
        if piece_digest is None and cur["size"] == size:
            piece_digest = cur["digest"]
        chunks.append(Chunk(file_offset=done, size=size, compressed=ByteRange(offset, next_start[offset]),
                            digest=piece_digest, kind=ChunkKind.DATA, inner_offset=inner))
    finish()
    by_path = {e.path: e for e in entries}
    prefetch = None
    lm = by_path.get(PREFETCH_LANDMARK)
    if lm is not None and lm.chunks:
        prefetch = ByteRange(0, lm.chunks[0].compressed.start)
    return Toc(format=fmt, compression=compression, entries=tuple(entries), digest=digest,
               toc_range=toc_range, blob_size=blob_size, prefetch=prefetch,
               no_prefetch=NO_PREFETCH_LANDMARK in by_path)


def _validate(toc: Toc, blob_size: int | None) -> Toc:
    """H1's hostile-TOC checks, when that module is present."""
    try:
        from imageformat.tocvalidate import validate_toc
    except ImportError:  # pragma: no cover - lands in parallel
        return toc
    validate_toc(toc, blob_size)
    return toc


def _load(json_bytes: bytes) -> Any:
    try:
        return json.loads(json_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise TocError(f"TOC is not valid JSON: {str(e)[:200]}") from None


def parse_estargz_toc(member: bytes, *, toc_range: ByteRange, blob_size: int,
                      expected_digest: str | None) -> Toc:
    """The model of an eStargz TOC, from the bytes of its member (`toc_range` of the blob)."""
    json_bytes = toc_json_from_member(member)
    digest = _check_digest(json_bytes, expected_digest, "eStargz TOC (toc.digest)")
    toc = jtoc_to_toc(_load(json_bytes), fmt=LayerFormat.ESTARGZ, compression=Compression.GZIP,
                      data_end=toc_range.start, digest=digest, toc_range=toc_range, blob_size=blob_size)
    return _validate(toc, blob_size)


def read_estargz_toc(fetch: Fetch, blob_size: int, annotations: Mapping[str, str]) -> Toc:
    """Footer -> TOC member -> verified model, reading the blob through `fetch`."""
    if blob_size < ESTARGZ_FOOTER_BYTES:
        raise TruncatedLayerError(f"blob of {blob_size} bytes is shorter than an eStargz footer")
    tail = fetch(ByteRange(blob_size - ESTARGZ_FOOTER_BYTES, blob_size))
    toc_range = locate_estargz_toc(blob_size, tail)
    member = fetch(toc_range)
    if len(member) != toc_range.length:
        raise TruncatedLayerError(f"read {len(member)} TOC bytes, expected {toc_range.length}")
    return parse_estargz_toc(member, toc_range=toc_range, blob_size=blob_size,
                             expected_digest=annotations.get(TOC_DIGEST_ANNOTATION))


# ---- stargz-snapshotter's zstdchunked (§3.7) ------------------------------------------------
def locate_stargz_zstd_toc(blob_size: int, tail: bytes,
                           annotations: Mapping[str, str]) -> tuple[int, int, int]:
    """(tocOffset, compressed length, uncompressed length) from the annotation or 40-byte footer."""
    pos = annotations.get(ZSTD_POSITION_ANNOTATION)
    if pos is not None:
        parts = pos.split(":")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise FooterError(f"manifest-position {pos!r} is not offset:clen:ulen:type")
        off, clen, ulen, _ = (int(p) for p in parts)
    else:
        if len(tail) < STARGZ_ZSTD_FOOTER_BYTES or tail[-8:] != b"GnUlInUx":
            raise FooterError("no 40-byte GnUlInUx footer at the end of the blob")
        magic, length = struct.unpack("<II", tail[-48:-40])
        if magic != 0x184D2A50 or length != 40:
            raise FooterError("footer is not wrapped in a 40-byte skippable frame")
        off, clen, ulen, _kind = struct.unpack("<QQQQ", tail[-40:-8])
    if clen > MAX_TOC_BYTES or ulen > MAX_TOC_BYTES:
        raise TocTooLargeError(f"TOC of {clen}/{ulen} bytes exceeds {MAX_TOC_BYTES}")
    if off < 8 or off + clen + STARGZ_ZSTD_FOOTER_BYTES > blob_size:
        raise FooterError(f"TOC at {off}+{clen} does not fit a {blob_size}-byte blob")
    return off, clen, ulen


def parse_stargz_zstd_toc(packed: bytes, *, toc_offset: int, uncompressed_size: int, blob_size: int,
                          annotations: Mapping[str, str]) -> Toc:
    _check_digest(packed, annotations.get(ZSTD_CHECKSUM_ANNOTATION), "zstd TOC (manifest-checksum)")
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(packed))
        json_bytes = reader.read(uncompressed_size + 1)
    except zstandard.ZstdError as e:
        raise TocError(f"TOC frame is not valid zstd: {e}") from None
    if len(json_bytes) != uncompressed_size:
        raise TocError(f"TOC decodes to {len(json_bytes)} bytes, position says {uncompressed_size}")
    digest = _check_digest(json_bytes, annotations.get(TOC_DIGEST_ANNOTATION), "TOC (toc.digest)")
    toc = jtoc_to_toc(_load(json_bytes), fmt=LayerFormat.STARGZ_ZSTDCHUNKED, compression=Compression.ZSTD,
                      data_end=toc_offset - 8, digest=digest,
                      toc_range=ByteRange(toc_offset, toc_offset + len(packed)), blob_size=blob_size)
    return _validate(toc, blob_size)


def read_stargz_zstd_toc(fetch: Fetch, blob_size: int, annotations: Mapping[str, str]) -> Toc:
    tail = fetch(ByteRange(max(0, blob_size - STARGZ_ZSTD_FOOTER_BYTES), blob_size))
    off, clen, ulen = locate_stargz_zstd_toc(blob_size, tail, annotations)
    packed = fetch(ByteRange(off, off + clen))
    if len(packed) != clen:
        raise TruncatedLayerError(f"read {len(packed)} TOC bytes, expected {clen}")
    return parse_stargz_zstd_toc(packed, toc_offset=off, uncompressed_size=ulen, blob_size=blob_size,
                                 annotations=annotations)


def looks_like_jtoc(json_bytes: bytes) -> bool:
    """eStargz JTOC shape: tab-indented, no `endOffset` (zstd:chunked TOCs are compact)."""
    return json_bytes.startswith(b"{\n\t") and b'"endOffset"' not in json_bytes[:65536]


__all__ = [
    "ESTARGZ_FOOTER_BYTES",
    "MAX_TOC_BYTES",
    "TOC_DIGEST_ANNOTATION",
    "jtoc_to_toc",
    "locate_estargz_toc",
    "locate_stargz_zstd_toc",
    "looks_like_jtoc",
    "parse_estargz_footer",
    "parse_estargz_toc",
    "parse_stargz_zstd_toc",
    "read_estargz_toc",
    "read_stargz_zstd_toc",
]
