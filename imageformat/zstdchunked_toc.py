"""zstd:chunked decoder: find, authenticate and parse a layer's TOC (spec formats.md §1.1-§1.3, §1.6, §1.11).

Public API (sans-IO: the caller fetches the byte ranges it is told to):

    locate_zstd_chunked_toc(annotations, blob_size, tail=None) -> TocLocation
        Where the TOC (and the tar-split) live. Uses the `manifest-position` annotation (either
        key prefix) when present, else sniffs the footer in `tail` (the last >= 72 bytes of the
        blob; 40-, 56- and 64-byte footers). When both are given they must agree.
    TAIL_BYTES: how many trailing blob bytes sniffing needs.
    parse_zstd_chunked_toc(location, toc_bytes, *, expected_digest=None, blob_size=None) -> Toc
        `toc_bytes` = blob[location.toc]; checked against `expected_digest` (defaults to the
        location's manifest-checksum), size-capped before and while decompressing, parsed into
        the shared model (imageformat.toc) and validated (imageformat.tocvalidate).
    decode_toc_json(location, toc_bytes, *, expected_digest=None) -> bytes
        The verified, decompressed TOC JSON bytes.
    load_tar_split(toc, tar_split_bytes, *, uncompressed_size=None) -> list[TarSplitRecord]
        Authenticate the tar-split with `toc.tar_split_digest`, decode it, and check that its tar
        headers describe exactly the TOC's entries (check_tar_split_headers).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imageformat.byterange import ByteRange
from imageformat.digest import is_digest, sha256_digest
from imageformat.errors import (
    DuplicateEntryError,
    FooterError,
    TocDigestError,
    TocError,
    TocTooLargeError,
    TruncatedLayerError,
    UnsafePathError,
)
from imageformat.gojson import GO_ZERO_NS, parse_go_time
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
from imageformat.tocvalidate import MAX_ENTRIES, validate_toc
from imageformat.zstdchunked import (
    ANNOTATION_PREFIX_A,
    ANNOTATION_PREFIX_B,
    MAGIC_A,
    MAGIC_B,
    MANIFEST_CHECKSUM,
    MANIFEST_POSITION,
    TARSPLIT_POSITION,
)
from imageformat.zstdchunked_tarsplit import MAX_TAR_SPLIT_BYTES, check_tar_split_headers, load_tar_split
from imageformat.zstdframes import SKIPPABLE_MAGIC, decompress_capped

MAX_TOC_BYTES = 150 << 20  # containers/storage >= 1.58
TAIL_BYTES = 72
LANDMARK_PREFETCH = ".prefetch.landmark"
LANDMARK_NO_PREFETCH = ".no.prefetch.landmark"
_EMPTY_DIGEST = sha256_digest(b"")


@dataclass(frozen=True, kw_only=True)
class TocLocation:
    """Where a zstd:chunked layer keeps its metadata."""

    toc: ByteRange  # compressed TOC (the skippable frame's payload)
    toc_uncompressed_size: int
    toc_digest: str | None  # manifest-checksum; None when found by footer sniffing only
    tar_split: ByteRange | None = None
    tar_split_uncompressed_size: int | None = None
    footer_size: int | None = None  # 40, 56 or 64 when a footer was read
    annotation_prefix: str | None = None  # which key family the annotations used

    @property
    def fetch_ranges(self) -> list[ByteRange]:
        """The ranges to GET (one request, as c/storage >= 1.54 does)."""
        return [self.toc] + ([self.tar_split] if self.tar_split is not None else [])


def _position(value: str, fields: int) -> list[int]:
    parts = value.split(":")
    if len(parts) != fields or not all(p.isdigit() for p in parts):
        raise FooterError(f"malformed position annotation {value[:80]!r}")
    return [int(p) for p in parts]


def _sniff_footer(tail: bytes) -> tuple[list[int], int]:
    """(fields, footer payload size) from the blob's last bytes (formats.md §1.3 sniffing)."""
    if len(tail) >= 64 and tail[-8:] == MAGIC_B:
        if len(tail) >= 72 and tail[-72:-68] != SKIPPABLE_MAGIC:
            raise FooterError("64-byte footer is not inside a skippable frame")
        return list(struct.unpack("<7Q", tail[-64:-8])), 64
    if len(tail) >= 40 and tail[-8:] == MAGIC_A:
        return list(struct.unpack("<4Q", tail[-40:-8])), 40
    if len(tail) >= 56 and tail[-24:-16] == MAGIC_A and tail[-16:] == bytes(16):
        return list(struct.unpack("<4Q", tail[-56:-24])), 56
    raise FooterError("no zstd:chunked footer (magic GNUlInUx/GnUlInUx) at the end of the blob")


def _check_range(what: str, start: int, length: int, blob_size: int) -> ByteRange:
    if start + length > blob_size:
        raise TruncatedLayerError(f"{what} [{start}, {start + length}) ends past the blob end {blob_size}")
    return ByteRange(start, start + length)


def locate_zstd_chunked_toc(
    annotations: Mapping[str, str], blob_size: int, tail: bytes | None = None
) -> TocLocation:
    """See the module docstring. Raises FooterError / TruncatedLayerError / TocTooLargeError."""
    prefix = next(
        (p for p in (ANNOTATION_PREFIX_B, ANNOTATION_PREFIX_A) if p + MANIFEST_POSITION in annotations), None
    )
    footer: tuple[list[int], int] | None = None
    if tail is not None:
        if len(tail) > blob_size:
            raise TruncatedLayerError(f"tail of {len(tail)} bytes but the blob has {blob_size}")
        try:
            footer = _sniff_footer(tail)
        except FooterError:
            if prefix is None:
                raise
    if prefix is None and footer is None:
        raise FooterError("no manifest-position annotation and no blob tail to sniff a footer from")
    ts_range: ByteRange | None = None
    ts_size: int | None = None
    if prefix is not None:
        toc_off, toc_len, toc_size, mtype = _position(annotations[prefix + MANIFEST_POSITION], 4)
        digest = annotations.get(prefix + MANIFEST_CHECKSUM)
        if digest is None or not is_digest(digest):
            raise FooterError(f"missing or malformed {prefix}{MANIFEST_CHECKSUM} annotation")
        if prefix + TARSPLIT_POSITION in annotations:
            ts_off, ts_len, ts_size = _position(annotations[prefix + TARSPLIT_POSITION], 3)
            ts_range = _check_range("tar-split", ts_off, ts_len, blob_size)
        if footer is not None:
            fields, _ = footer
            if fields[:4] != [toc_off, toc_len, toc_size, mtype]:
                raise FooterError(f"footer {fields[:4]} disagrees with the manifest-position annotation")
            ts_fields = [ts_range.start, len(ts_range), ts_size] if ts_range is not None else None
            if ts_fields is not None and len(fields) == 7 and fields[4:] != ts_fields:
                raise FooterError("footer tar-split fields disagree with the tarsplit-position annotation")
    else:
        assert footer is not None
        fields, _ = footer
        toc_off, toc_len, toc_size, mtype = fields[:4]
        digest = None
        if len(fields) == 7:
            ts_range = _check_range("tar-split", fields[4], fields[5], blob_size)
            ts_size = fields[6]
    if mtype != 1:
        raise FooterError(f"manifest type {mtype} is not 1 (CRFS-compatible manifest)")
    if toc_len > MAX_TOC_BYTES or toc_size > MAX_TOC_BYTES:
        raise TocTooLargeError(f"TOC of {toc_len} compressed / {toc_size} bytes exceeds {MAX_TOC_BYTES}")
    if ts_size is not None and ts_size > MAX_TAR_SPLIT_BYTES:
        raise TocTooLargeError(f"tar-split of {ts_size} bytes exceeds {MAX_TAR_SPLIT_BYTES}")
    if toc_off < 8:
        raise FooterError(f"TOC offset {toc_off} leaves no room for its skippable frame header")
    return TocLocation(
        toc=_check_range("TOC", toc_off, toc_len, blob_size),
        toc_uncompressed_size=toc_size,
        toc_digest=digest,
        tar_split=ts_range,
        tar_split_uncompressed_size=ts_size,
        footer_size=footer[1] if footer else None,
        annotation_prefix=prefix,
    )


def decode_toc_json(location: TocLocation, toc_bytes: bytes, *, expected_digest: str | None = None) -> bytes:
    expected = expected_digest or location.toc_digest
    if len(toc_bytes) != len(location.toc):
        raise TruncatedLayerError(f"got {len(toc_bytes)} TOC bytes, expected {len(location.toc)}")
    if expected is not None and sha256_digest(toc_bytes) != expected:
        raise TocDigestError(f"TOC digest {sha256_digest(toc_bytes)} != manifest-checksum {expected}")
    return decompress_capped(toc_bytes, location.toc_uncompressed_size, "TOC")


def _int(e: Mapping[str, Any], key: str) -> int:
    v = e.get(key, 0)
    if v is None:
        return 0
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >= 1 << 63:
        raise TocError(f"TOC field {key}={v!r} is not a non-negative integer")
    return v


def _str(e: Mapping[str, Any], key: str) -> str:
    v = e.get(key) or ""
    if not isinstance(v, str):
        raise TocError(f"TOC field {key}={v!r} is not a string")
    return v


def _time(e: Mapping[str, Any], key: str) -> int | None:
    text = _str(e, key)
    if not text:
        return None
    try:
        ns = parse_go_time(text)
    except ValueError as err:
        raise TocError(str(err)) from None
    return None if ns in (GO_ZERO_NS, 0) else ns


def _digest(e: Mapping[str, Any], key: str) -> str | None:
    v = _str(e, key)
    if v and not is_digest(v):
        raise TocError(f"TOC field {key}={v[:80]!r} is not a digest")
    return v or None


def _load_json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise TocError(f"TOC is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise TocError("TOC is not a JSON object")
    doc = {k.lower(): v for k, v in doc.items()}
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise TocError("TOC has no entries list")
    if len(entries) > MAX_ENTRIES:
        raise TocTooLargeError(f"TOC claims {len(entries)} entries (limit {MAX_ENTRIES})")
    if not all(isinstance(e, dict) for e in entries):
        raise TocError("TOC entry is not an object")
    doc["entries"] = [{k.lower(): v for k, v in e.items()} for e in entries]
    return doc


def _build_entries(raw_entries: list[dict[str, Any]]) -> list[TocEntry]:
    entries: list[TocEntry] = []
    i = 0
    while i < len(raw_entries):
        e = raw_entries[i]
        kind = _str(e, "type")
        name = _str(e, "name")
        if kind == "chunk":
            raise TocError(f"chunk entry for {name!r} not preceded by its reg entry")
        try:
            etype = EntryType(kind)
        except ValueError:
            raise TocError(f"unknown TOC entry type {kind!r}") from None
        if name.startswith("/"):
            raise UnsafePathError(f"absolute name {name!r} in the TOC")
        try:
            path = normalize_path(name)
        except ValueError as err:
            raise UnsafePathError(str(err)) from None
        size = _int(e, "size")
        chunks: list[Chunk] = []
        digest = _digest(e, "digest")
        i += 1
        if etype is EntryType.REG and size > 0:
            pieces = [e]
            while i < len(raw_entries) and _str(raw_entries[i], "type") == "chunk":
                if _str(raw_entries[i], "name") != name:
                    raise TocError(f"chunk entry of {_str(raw_entries[i], 'name')!r} follows {name!r}")
                pieces.append(raw_entries[i])
                i += 1
            end = _int(e, "endoffset")
            for k, p in enumerate(pieces):
                start = _int(p, "offset")
                stop = _int(pieces[k + 1], "offset") if k + 1 < len(pieces) else end
                if stop <= start:
                    raise TocError(f"{name!r}: chunk {k} has compressed range [{start}, {stop})")
                csize = _int(p, "chunksize") if len(pieces) > 1 else size
                ctype = _str(p, "chunktype")
                if ctype not in ("", "zeros"):
                    raise TocError(f"{name!r}: unknown chunkType {ctype!r}")
                chunks.append(
                    Chunk(
                        file_offset=_int(p, "chunkoffset") if k else 0,
                        size=csize,
                        compressed=ByteRange(start, stop),
                        digest=_digest(p, "chunkdigest") if len(pieces) > 1 else digest,
                        kind=ChunkKind(ctype),
                    )
                )
        elif etype is EntryType.REG and digest is None:
            digest = _EMPTY_DIGEST
        try:
            xattrs = {str(k): base64.b64decode(v, validate=True) for k, v in (e.get("xattrs") or {}).items()}
        except (binascii.Error, TypeError, AttributeError, ValueError):
            raise TocError(f"{name!r}: xattrs are not base64 strings") from None
        entries.append(
            TocEntry(
                path=path,
                name=name,
                type=etype,
                mode=_int(e, "mode"),
                uid=_int(e, "uid"),
                gid=_int(e, "gid"),
                size=size,
                mtime_ns=_time(e, "modtime"),
                link_name=_str(e, "linkname"),
                dev_major=_int(e, "devmajor"),
                dev_minor=_int(e, "devminor"),
                xattrs=xattrs,
                digest=digest,
                chunks=tuple(chunks),
            )
        )
    return entries


def parse_zstd_chunked_toc(
    location: TocLocation,
    toc_bytes: bytes,
    *,
    expected_digest: str | None = None,
    blob_size: int | None = None,
) -> Toc:
    """See the module docstring."""
    doc = _load_json(decode_toc_json(location, toc_bytes, expected_digest=expected_digest))
    if doc.get("version") != 1:
        raise TocError(f"TOC version {doc.get('version')!r} is not 1")
    entries = _build_entries(doc["entries"])
    ts_digest = _digest(doc, "tarsplitdigest")
    if ts_digest is not None:
        seen: set[str] = set()
        for ent in entries:
            if ent.path in seen:
                raise DuplicateEntryError(f"{ent.name!r} appears twice in a TOC with a tar-split")
            seen.add(ent.path)
        if location.tar_split is None:
            raise FooterError("the TOC has a tarSplitDigest but no tar-split position is known")
    by_path = {ent.path: ent for ent in entries}
    landmark = by_path.get(LANDMARK_PREFETCH)
    prefetch = None
    if landmark is not None and landmark.chunks:
        prefetch = ByteRange(0, landmark.chunks[0].compressed.start)
    toc = Toc(
        format=LayerFormat.ZSTD_CHUNKED if ts_digest else LayerFormat.ZSTD_CHUNKED_LEGACY,
        compression=Compression.ZSTD,
        entries=tuple(entries),
        digest=expected_digest or location.toc_digest or sha256_digest(toc_bytes),
        toc_range=location.toc,
        blob_size=blob_size,
        prefetch=prefetch,
        no_prefetch=LANDMARK_NO_PREFETCH in by_path,
        tar_split_digest=ts_digest,
        tar_split_range=location.tar_split if ts_digest else None,
    )
    validate_toc(toc, blob_size)
    return toc


__all__ = [
    "MAX_TOC_BYTES",
    "TAIL_BYTES",
    "TocLocation",
    "check_tar_split_headers",
    "decode_toc_json",
    "load_tar_split",
    "locate_zstd_chunked_toc",
    "parse_zstd_chunked_toc",
]
