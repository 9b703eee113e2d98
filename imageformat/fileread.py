"""Read any file, or any byte range of a file, of a lazy layer through its TOC alone.

Generic over every format that builds an `imageformat.toc.Toc` (zstd:chunked, eStargz):

    plan_file_read(toc, path, file_range=None) -> list[Chunk]
        the chunks overlapping the wanted range, in file order (hardlinks followed).
    read_file(toc, path, fetch, file_range=None, *, verify=True) -> bytes
        `fetch(ranges)` returns the blob bytes of each requested ByteRange, in order. Zero
        chunks are never fetched. Each chunk is decoded with `imageformat.layer.decode_chunk`
        (digest-checked); when the whole file is read its `digest` is checked too
        (ContentDigestError).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from imageformat.byterange import ByteRange
from imageformat.errors import ContentDigestError, TocError, TruncatedLayerError
from imageformat.layer import decode_chunk
from imageformat.toc import Chunk, ChunkKind, EntryType, Toc, TocEntry, normalize_path

Fetch = Callable[[Sequence[ByteRange]], Sequence[bytes]]
_MAX_LINK_HOPS = 40


def resolve_regular(toc: Toc, path: str) -> TocEntry:
    """The regular-file entry at `path`, following hardlinks. KeyError if absent, TocError if not a file."""
    entry = toc.entry(path)
    hops = 0
    while entry.type is EntryType.HARDLINK:
        hops += 1
        if hops > _MAX_LINK_HOPS:
            raise TocError(f"hardlink loop at {path!r}")
        entry = toc.by_path[normalize_path(entry.link_name)]
    if entry.type is not EntryType.REG:
        raise TocError(f"{path!r} is a {entry.type}, not a regular file")
    return entry


def plan_file_read(toc: Toc, path: str, file_range: ByteRange | None = None) -> list[Chunk]:
    entry = resolve_regular(toc, path)
    wanted = ByteRange(0, entry.size) if file_range is None else file_range
    if wanted.stop > entry.size:
        raise ValueError(f"range {wanted} is past the end of {path!r} ({entry.size} bytes)")
    return entry.chunks_for(wanted)


def read_file(
    toc: Toc,
    path: str,
    fetch: Fetch,
    file_range: ByteRange | None = None,
    *,
    verify: bool = True,
) -> bytes:
    entry = resolve_regular(toc, path)
    whole = ByteRange(0, entry.size)
    wanted = whole if file_range is None else file_range
    chunks = plan_file_read(toc, path, wanted)
    to_fetch = [c for c in chunks if c.kind is not ChunkKind.ZEROS]
    blobs = list(fetch([c.compressed for c in to_fetch])) if to_fetch else []
    if len(blobs) != len(to_fetch):
        raise TruncatedLayerError(f"fetch returned {len(blobs)} ranges, {len(to_fetch)} requested")
    data = iter(blobs)
    out = bytearray()
    for c in chunks:
        raw = b"" if c.kind is ChunkKind.ZEROS else next(data)
        if c.kind is not ChunkKind.ZEROS and len(raw) != c.compressed.length:
            raise TruncatedLayerError(f"range {c.compressed} returned {len(raw)} bytes")
        content = decode_chunk(toc.compression, raw, c, verify=verify)
        lo = max(wanted.start, c.file_offset) - c.file_offset
        hi = min(wanted.stop, c.file_offset + c.size) - c.file_offset
        out += content[lo:hi]
    result = bytes(out)
    if verify and wanted == whole and entry.digest is not None:
        got = "sha256:" + hashlib.sha256(result).hexdigest()
        if got != entry.digest:
            raise ContentDigestError(f"{path!r}: content digest {got} != the TOC's {entry.digest}")
    return result


__all__ = ["Fetch", "plan_file_read", "read_file", "resolve_regular"]
