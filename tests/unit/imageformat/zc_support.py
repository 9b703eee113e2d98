"""Shared bits of the zstd:chunked tests: the golden vectors and whole-blob helpers."""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import zstandard

from imageformat.toc import Toc
from imageformat.zstdchunked import SKIPPABLE_MAGIC
from imageformat.zstdchunked_toc import (
    TAIL_BYTES,
    TocLocation,
    locate_zstd_chunked_toc,
    parse_zstd_chunked_toc,
)

TESTDATA = Path("/work/shared/testdata")
VECTOR_NAMES = [f"{g}/{v}" for g in ("a", "b") for v in ("example", "rich", "edge")]


@dataclass(frozen=True)
class Vector:
    gen: str
    name: str
    dir: Path

    @property
    def blob(self) -> bytes:
        return (self.dir / "layer.zst").read_bytes()

    @property
    def annotations(self) -> dict[str, str]:
        return json.loads((self.dir / "annotations.json").read_text())

    @property
    def toc_json(self) -> bytes:
        return (self.dir / "toc.json").read_bytes()

    @property
    def source_path(self) -> Path:
        """source.tar; in zstdchunked-b it may be stored as a file holding the relative link target."""
        p = self.dir / "source.tar"
        if p.stat().st_size < 512:
            p = (self.dir / p.read_text().strip()).resolve()
        return p

    @property
    def source(self) -> bytes:
        return self.source_path.read_bytes()


def vector(name: str) -> Vector:
    gen, v = name.split("/")
    return Vector(gen, v, TESTDATA / f"zstdchunked-{gen}" / v)


def locate(blob: bytes, annotations: dict[str, str] | None) -> TocLocation:
    return locate_zstd_chunked_toc(annotations or {}, len(blob), blob[-TAIL_BYTES:])


def parse(blob: bytes, annotations: dict[str, str] | None = None) -> tuple[TocLocation, Toc]:
    loc = locate(blob, annotations)
    toc = parse_zstd_chunked_toc(loc, blob[loc.toc.start : loc.toc.stop], blob_size=len(blob))
    return loc, toc


def fetcher(blob: bytes):  # type: ignore[no-untyped-def]
    return lambda ranges: [blob[r.start : r.stop] for r in ranges]


def decompress_stream(blob: bytes) -> bytes:
    """The whole blob through a plain zstd reader (skippable frames skipped)."""
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True)
    return reader.read()


def replace_toc(blob: bytes, annotations: dict[str, str], toc_json: bytes, *, declared: int | None = None):  # type: ignore[no-untyped-def]
    """A gen (a)-style blob whose TOC is `toc_json` (data frames kept), with matching annotations.

    Used to feed lying TOCs to the decoder: the TOC is authentic (its digest matches), only its
    content is hostile.
    """
    import hashlib

    loc = locate(blob, annotations)
    data = blob[: loc.toc.start - 8]
    c = zstandard.ZstdCompressor(level=3).compress(toc_json)
    size = len(toc_json) if declared is None else declared
    toc_off = len(data) + 8
    out = data + SKIPPABLE_MAGIC + struct.pack("<I", len(c)) + c
    footer = struct.pack("<4Q", toc_off, len(c), size, 1) + b"GnUlInUx"
    out += SKIPPABLE_MAGIC + struct.pack("<I", 40) + footer
    ann = {
        "io.containers.zstd-chunked.manifest-checksum": "sha256:" + hashlib.sha256(c).hexdigest(),
        "io.containers.zstd-chunked.manifest-position": f"{toc_off}:{len(c)}:{size}:1",
    }
    return out, ann
