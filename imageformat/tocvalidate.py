"""Refuse TOCs that lie, whatever format they came from (formats.md §1.11; issue "Hostile input").

`validate_toc(toc, blob_size)` checks the format-independent model after a parser built it:
counts, names (no `..`, no absolute names, no entry below a symlink), link targets
(symlinks may not climb above the root, hardlinks must name an earlier non-directory entry),
chunk tiling (every regular file's chunks cover [0, size) exactly, in order) and compressed
ranges (inside the blob, outside the TOC, not partially overlapping another chunk's range;
identical ranges are allowed only for eStargz-style `inner_offset` sharing).
"""

from __future__ import annotations

import posixpath

from imageformat.byterange import ByteRange
from imageformat.digest import is_digest
from imageformat.errors import TocError, TocTooLargeError, TruncatedLayerError, UnsafePathError
from imageformat.toc import EntryType, Toc, normalize_path

MAX_ENTRIES = 10_000_000
MAX_CHUNKS = 50_000_000


def _check_name(name: str, path: str) -> None:
    if "\0" in name:
        raise UnsafePathError(f"NUL byte in name {name!r}")
    if name.startswith("/"):
        raise UnsafePathError(f"absolute name {name!r}")
    try:
        clean = normalize_path(name)
    except ValueError as e:
        raise UnsafePathError(str(e)) from None
    if clean != path:
        raise TocError(f"entry path {path!r} does not match its name {name!r}")


def _check_links(toc: Toc) -> None:
    kinds: dict[str, EntryType] = {}
    symlinks: set[str] = set()
    for e in toc.entries:
        parent = posixpath.dirname(e.path)
        while parent:
            if parent in symlinks:
                raise UnsafePathError(f"{e.name!r} lies below the symlink {parent!r}")
            parent = posixpath.dirname(parent)
        if e.type is EntryType.SYMLINK:
            if not e.link_name:
                raise TocError(f"symlink {e.name!r} has no target")
            if not e.link_name.startswith("/"):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(e.path), e.link_name))
                if target == ".." or target.startswith("../"):
                    raise UnsafePathError(f"symlink {e.name!r} -> {e.link_name!r} escapes the root")
            symlinks.add(e.path)
        elif e.type is EntryType.HARDLINK:
            try:
                target = normalize_path(e.link_name)
            except ValueError:
                raise UnsafePathError(f"hardlink {e.name!r} -> {e.link_name!r} escapes the root") from None
            if target not in kinds:
                raise TocError(f"hardlink {e.name!r} -> {e.link_name!r}: no earlier entry of that name")
            if kinds[target] is EntryType.DIR:
                raise TocError(f"hardlink {e.name!r} points at a directory")
        elif e.path in symlinks:
            symlinks.discard(e.path)
        kinds[e.path] = e.type


def validate_toc(toc: Toc, blob_size: int | None = None) -> None:
    """Raise a TocError subclass if the TOC is not self-consistent and safe (see module docstring)."""
    if len(toc.entries) > MAX_ENTRIES:
        raise TocTooLargeError(f"{len(toc.entries)} entries (limit {MAX_ENTRIES})")
    size = blob_size if blob_size is not None else toc.blob_size
    if size is not None and toc.toc_range.stop > size:
        raise TruncatedLayerError(f"TOC range {toc.toc_range} ends past the blob ({size} bytes)")
    ranges: list[tuple[ByteRange, int, str]] = []
    for e in toc.entries:
        _check_name(e.name, e.path)
        if e.digest is not None and not is_digest(e.digest):
            raise TocError(f"{e.name!r}: bad digest {e.digest[:80]!r}")
        if e.type is not EntryType.REG:
            if e.chunks:
                raise TocError(f"{e.name!r}: a {e.type} entry cannot have chunks")
            continue
        pos = 0
        for c in e.chunks:
            if c.file_offset != pos or c.size <= 0:
                raise TocError(
                    f"{e.name!r}: chunks do not tile the file "
                    f"(chunk at {c.file_offset} size {c.size}, expected {pos})"
                )
            pos += c.size
            if c.digest is not None and not is_digest(c.digest):
                raise TocError(f"{e.name!r}: bad chunk digest {c.digest[:80]!r}")
            if c.compressed.length == 0:
                raise TocError(f"{e.name!r}: chunk at {c.file_offset} has an empty compressed range")
            if c.inner_offset < 0:
                raise TocError(f"{e.name!r}: negative inner offset")
            if size is not None and c.compressed.stop > size:
                raise TruncatedLayerError(
                    f"{e.name!r}: chunk range {c.compressed} is past the blob end {size}"
                )
            if c.compressed.overlaps(toc.toc_range):
                raise TocError(f"{e.name!r}: chunk range {c.compressed} overlaps the TOC {toc.toc_range}")
            if toc.tar_split_range is not None and c.compressed.overlaps(toc.tar_split_range):
                raise TocError(f"{e.name!r}: chunk range {c.compressed} overlaps the tar-split")
            ranges.append((c.compressed, c.inner_offset, e.name))
            if len(ranges) > MAX_CHUNKS:
                raise TocTooLargeError(f"more than {MAX_CHUNKS} chunks")
        if pos != e.size:
            raise TocError(f"{e.name!r}: chunks cover {pos} bytes but the size is {e.size}")
    ranges.sort(key=lambda t: (t[0].start, t[0].stop, t[1]))
    for k in range(1, len(ranges)):
        (a, ia, na), (b, ib, nb) = ranges[k - 1], ranges[k]
        if a == b and ia != ib:
            continue  # several pieces in one gzip member / zstd frame (eStargz innerOffset)
        if b.start < a.stop:
            raise TocError(f"compressed ranges of {na!r} {a} and {nb!r} {b} overlap")
    _check_links(toc)


__all__ = ["MAX_CHUNKS", "MAX_ENTRIES", "validate_toc"]
