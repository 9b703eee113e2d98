"""Generation (b) tar-split of a zstd:chunked layer: authenticate, decode, cross-check (§1.10-§1.11).

    load_tar_split(toc, tar_split_bytes, *, uncompressed_size=None) -> list[TarSplitRecord]
    check_tar_split_headers(toc, records)

Re-exported by imageformat.zstdchunked_toc.
"""

from __future__ import annotations

from imageformat.digest import sha256_digest
from imageformat.errors import FormatError, TocDigestError, TocError, TocTooLargeError
from imageformat.gojson import GO_ZERO_NS
from imageformat.tarscan import scan_tar
from imageformat.tarsplit import FILE, TarSplitRecord, TarSplitView, parse_tar_split
from imageformat.toc import EntryType, Toc
from imageformat.zstdframes import decompress_capped, decompress_upto

MAX_TAR_SPLIT_BYTES = 1 << 30


def load_tar_split(
    toc: Toc, tar_split_bytes: bytes, *, uncompressed_size: int | None = None
) -> list[TarSplitRecord]:
    """Authenticate (tarSplitDigest), decode and cross-check the tar-split of a gen (b) layer."""
    if toc.tar_split_digest is None:
        raise TocError("the TOC does not authenticate a tar-split (generation a layer)")
    got = sha256_digest(tar_split_bytes)
    if got != toc.tar_split_digest:
        raise TocDigestError(f"tar-split digest {got} != the TOC's tarSplitDigest {toc.tar_split_digest}")
    cap = uncompressed_size if uncompressed_size is not None else MAX_TAR_SPLIT_BYTES
    if cap > MAX_TAR_SPLIT_BYTES:
        raise TocTooLargeError(f"tar-split of {cap} bytes exceeds {MAX_TAR_SPLIT_BYTES}")
    if uncompressed_size is not None:
        raw = decompress_capped(tar_split_bytes, uncompressed_size, "tar-split")
    else:
        raw = decompress_upto(tar_split_bytes, cap, "tar-split")
    records = parse_tar_split(raw)
    files = [r for r in records if r.type == FILE]
    if [r.name for r in files] != [e.name for e in toc.entries]:
        raise TocError("the tar-split and the TOC do not list the same entries in the same order")
    for r, ent in zip(files, toc.entries, strict=True):
        if ent.type is EntryType.REG and r.size != ent.size:
            raise TocError(f"{ent.name!r}: tar-split size {r.size} != TOC size {ent.size}")
    check_tar_split_headers(toc, records)
    return records


def _absent_if_zero(ns: int | None) -> int | None:
    return None if ns in (None, 0, GO_ZERO_NS) else ns


def check_tar_split_headers(toc: Toc, records: list[TarSplitRecord]) -> None:
    """The tar headers the tar-split carries describe exactly the TOC's entries (formats.md §1.11
    item 4, what c/storage >= 1.55 checks): type, link, mode, ids, size, devices, xattrs, mtime."""
    try:
        members = scan_tar(TarSplitView(records)).members  # type: ignore[arg-type]
    except FormatError as err:
        raise TocError(f"the tar-split does not describe a valid tar: {err}") from None
    if len(members) != len(toc.entries):
        raise TocError(f"the tar-split holds {len(members)} tar entries, the TOC {len(toc.entries)}")
    for m, e in zip(members, toc.entries, strict=True):
        theirs = (m.name, m.type_name, m.linkname, m.mode, m.uid, m.gid, m.devmajor, m.devminor)
        ours = (e.name, e.type.value, e.link_name, e.mode, e.uid, e.gid, e.dev_major, e.dev_minor)
        if theirs != ours or dict(m.xattrs) != dict(e.xattrs) or (e.is_reg and m.size != e.size):
            raise TocError(f"{e.name!r}: the tar-split header disagrees with the TOC entry")
        if _absent_if_zero(m.mtime_ns) != e.mtime_ns:
            raise TocError(f"{e.name!r}: the tar-split mtime disagrees with the TOC")


__all__ = ["MAX_TAR_SPLIT_BYTES", "check_tar_split_headers", "load_tar_split"]
