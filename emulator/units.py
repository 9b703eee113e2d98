"""Verification units: the smallest pieces of a file that can be verified on their own, and cutting
a read's bytes out of them.

A unit is one chunk with a `chunkDigest` (or the single chunk of a file, verified by the file
digest), or - when a multi-chunk file has no chunk digests - the whole file. All-zero chunks need
no fetch and no digest. Unit keys name the layer and the bytes (cache keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from emulator.errors import VerificationError
from imageformat.byterange import ByteRange
from imageformat.toc import Chunk, ChunkKind, TocEntry


@dataclass(frozen=True, slots=True)
class Unit:
    """The smallest piece that can be verified on its own."""

    layer: int
    chunks: tuple[Chunk, ...]  # in file order, contiguous
    digest: str | None  # None only for all-zero units
    key: str
    # the chunks with bytes to fetch (not all-zero), worked out once: every read of the unit asks
    fetch_chunks: tuple[Chunk, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fetched = tuple(c for c in self.chunks if c.kind is not ChunkKind.ZEROS)
        object.__setattr__(self, "fetch_chunks", fetched)

    @property
    def file_range(self) -> ByteRange:
        return ByteRange(self.chunks[0].file_offset, self.chunks[-1].file_offset + self.chunks[-1].size)

    @property
    def size(self) -> int:
        """Content bytes (the length of `file_range`)."""
        return self.chunks[-1].file_offset + self.chunks[-1].size - self.chunks[0].file_offset


def units_for(layer: int, layer_digest: str, entry: TocEntry, wanted: ByteRange | None = None) -> list[Unit]:
    """The verification units of `entry` (in layer number `layer`) covering `wanted` (default: all)."""
    chunks = list(entry.chunks) if wanted is None else entry.chunks_for(wanted)
    if not chunks:
        return []
    per_chunk = all(c.digest or c.kind is ChunkKind.ZEROS for c in entry.chunks) or len(entry.chunks) == 1
    if not per_chunk:
        if entry.digest is None:
            raise VerificationError(f"{entry.path}: no file or chunk digest to verify it with")
        return [Unit(layer, tuple(entry.chunks), entry.digest, f"{layer_digest}:file:{entry.path}")]
    units = []
    for c in chunks:
        d = c.digest if c.digest else (entry.digest if len(entry.chunks) == 1 else None)
        if d is None and c.kind is not ChunkKind.ZEROS:
            raise VerificationError(f"{entry.path}: no file or chunk digest to verify it with")
        key = f"{layer_digest}:{c.compressed.start}-{c.compressed.stop}:{c.inner_offset}+{c.size}"
        units.append(Unit(layer, (c,), d, key))
    return units


def assemble(units: Sequence[Unit], contents: dict[str, bytes], wanted: ByteRange) -> bytes:
    """The `wanted` file bytes cut from the units' contents (which cover it, in file order)."""
    if len(units) == 1:
        fr = units[0].file_range
        data = contents[units[0].key]
        if fr.start == wanted.start and fr.stop == wanted.stop:
            return data
        return data[wanted.start - fr.start : wanted.stop - fr.start]
    out = bytearray()
    for u in units:
        fr = u.file_range
        data = contents[u.key]
        lo, hi = max(wanted.start, fr.start), min(wanted.stop, fr.stop)
        out += memoryview(data)[lo - fr.start : hi - fr.start]
    return bytes(out)
