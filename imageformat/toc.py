"""One TOC model for every lazy-pullable format.

A `Toc` lists a layer's entries in archive order; every regular file knows the chunks it is
made of and, for each chunk, the compressed blob range that holds it (whole zstd frames or
gzip members). That is all a lazy reader needs: fetch `chunk.compressed`, decode it with the
layer's `compression`, skip `chunk.inner_offset` bytes, take `chunk.size` bytes, verify
`chunk.digest`. Format-specific parsers (`zstdchunked`, `estargz`) build this model; nothing
downstream looks at format-specific JSON.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from imageformat.byterange import ByteRange


class LayerFormat(StrEnum):
    ZSTD_CHUNKED = "zstd:chunked"  # containers/storage >= 1.55 (generation b)
    ZSTD_CHUNKED_LEGACY = "zstd:chunked-legacy"  # containers/storage <= 1.43 (generation a)
    ESTARGZ = "estargz"
    STARGZ_ZSTDCHUNKED = "stargz-zstdchunked"  # stargz-snapshotter's zstd variant (decode only)
    GZIP = "gzip"
    ZSTD = "zstd"

    @property
    def lazy(self) -> bool:
        """Has a TOC, so files can be fetched by range."""
        return self not in (LayerFormat.GZIP, LayerFormat.ZSTD)


class Compression(StrEnum):
    ZSTD = "zstd"
    GZIP = "gzip"


class EntryType(StrEnum):
    REG = "reg"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


class ChunkKind(StrEnum):
    DATA = ""
    ZEROS = "zeros"


def normalize_path(name: str) -> str:
    """A TOC/tar name as a clean relative path: `./etc/` -> `etc`, the root -> `.`.

    Raises ValueError for names that escape the root (`..` components) — callers turn
    that into their own hostile-input error.
    """
    stripped = name.lstrip("/")
    parts = [p for p in stripped.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"path escapes the layer root: {name!r}")
    return "/".join(parts) if parts else "."


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a regular file's content and where its compressed bytes live."""

    file_offset: int  # offset of the chunk's first byte in the file content
    size: int  # uncompressed size
    compressed: ByteRange  # blob bytes holding the chunk (whole frames/members)
    digest: str | None  # sha256 of the chunk's bytes, when the TOC states it
    kind: ChunkKind = ChunkKind.DATA
    inner_offset: int = 0  # decoded bytes to skip before the chunk starts (eStargz innerOffset)

    @property
    def file_range(self) -> ByteRange:
        return ByteRange(self.file_offset, self.file_offset + self.size)


@dataclass(frozen=True, slots=True)
class TocEntry:
    path: str  # normalized (see normalize_path); the root directory is "."
    name: str  # the name exactly as the TOC states it
    type: EntryType
    mode: int = 0  # permission bits (+ setuid/setgid/sticky), no file-type bits
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime_ns: int | None = None  # None when the TOC has no (or a zero) modtime
    link_name: str = ""  # symlink target, or the archive path a hardlink points at
    dev_major: int = 0
    dev_minor: int = 0
    xattrs: Mapping[str, bytes] = field(default_factory=dict)
    digest: str | None = None  # sha256 of the whole content (regular files)
    chunks: tuple[Chunk, ...] = ()

    @property
    def is_reg(self) -> bool:
        return self.type is EntryType.REG

    @property
    def compressed_span(self) -> ByteRange | None:
        """The smallest blob range covering all of this file's chunks."""
        if not self.chunks:
            return None
        return ByteRange(
            min(c.compressed.start for c in self.chunks), max(c.compressed.stop for c in self.chunks)
        )

    def chunks_for(self, wanted: ByteRange) -> list[Chunk]:
        """The chunks overlapping `wanted` (a range of the file content), in file order."""
        return [c for c in self.chunks if c.file_range.overlaps(wanted)]


@dataclass(frozen=True)
class Toc:
    format: LayerFormat
    compression: Compression
    entries: tuple[TocEntry, ...]
    digest: str  # the TOC digest clients use (manifest-checksum / toc.digest)
    toc_range: ByteRange  # where the (compressed) TOC lives in the blob
    blob_size: int | None = None
    prefetch: ByteRange | None = None  # blob bytes before `.prefetch.landmark`, when present
    no_prefetch: bool = False  # `.no.prefetch.landmark` present
    tar_split_digest: str | None = None
    tar_split_range: ByteRange | None = None

    @cached_property
    def by_path(self) -> dict[str, TocEntry]:
        """Last entry wins for a path, as when the tar is extracted in order."""
        return {e.path: e for e in self.entries}

    @cached_property
    def children(self) -> dict[str, list[str]]:
        """Directory path -> names of its direct children, implied parents included."""
        kids: dict[str, dict[str, None]] = {".": {}}
        for e in self.entries:
            path = e.path
            while path != ".":
                parent = posixpath.dirname(path) or "."
                kids.setdefault(parent, {})[posixpath.basename(path)] = None
                if e.type is EntryType.DIR or path != e.path:
                    kids.setdefault(path, {})
                path = parent
        return {d: list(names) for d, names in kids.items()}

    def entry(self, path: str) -> TocEntry:
        """The entry at `path` (any spelling normalize_path accepts). KeyError if absent."""
        return self.by_path[normalize_path(path)]

    def regular_files(self) -> Iterator[TocEntry]:
        return (e for e in self.entries if e.type is EntryType.REG)

    @property
    def file_bytes(self) -> int:
        return sum(e.size for e in self.regular_files())

    @property
    def chunk_count(self) -> int:
        return sum(len(e.chunks) for e in self.entries)
