"""`SimImage`: what the simulator knows about an image — layers, files, chunks, compressed ranges.

Every lazy layer is built from an `imageformat.toc.Toc`, so an image read from an OCI layout has
exactly the files, chunks and compressed ranges the emulator fetches. Synthetic layers are first
turned into a `Toc` (fixed-size chunks, estimated header/TOC sizes: docs/model.md) and then take
the same path. Fetch *units* are what a lazy reader caches: the distinct compressed ranges of
TOC chunks (`chunk` granularity) or aligned blocks of the blob (`block`, stargz-store's 50,000 B).
"""

from __future__ import annotations

import bisect
import hashlib
import posixpath
from dataclasses import dataclass, field

import numpy as np

from imageformat.byterange import ByteRange
from imageformat.toc import Chunk, ChunkKind, Compression, EntryType, LayerFormat, Toc, TocEntry
from startup.scenario import SyntheticImageSpec, SyntheticLayerSpec
from startup.synthimage import plan_layer

TAR_HEADER_BYTES = 512
HEADER_FRAME_BYTES = 110  # a compressed tar header frame (zstd:chunked) / gzip member overhead
TOC_BYTES_PER_ENTRY = 90  # compressed TOC JSON per file entry (measured order on skopeo output)
TOC_BYTES_PER_CHUNK = 45  # compressed TOC JSON per extra chunk entry
TARSPLIT_BYTES_PER_ENTRY = 60
NOT_CONTENT = frozenset({".prefetch.landmark", ".no.prefetch.landmark", "stargz.index.json"})
FOOTER_BYTES = {LayerFormat.ZSTD_CHUNKED: 72, LayerFormat.ESTARGZ: 51}


class ImageError(ValueError):
    """An image the simulator cannot build (missing layout, unknown tag, unreadable layer)."""


@dataclass(frozen=True, slots=True)
class SimFile:
    size: int
    k0: int  # first chunk index in the layer's chunk arrays
    k1: int
    digest: str


@dataclass
class Units:
    """Fetch units of one layer at one granularity."""

    starts: np.ndarray  # compressed byte ranges [start, stop)
    stops: np.ndarray
    chunk_first: np.ndarray  # per chunk: first unit index (-1 for zero chunks)
    chunk_last: np.ndarray
    lengths: list[int] = field(default_factory=list)  # python ints, for fast per-unit sums
    _groups: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.lengths:
            self.lengths = (self.stops - self.starts).tolist()

    @property
    def count(self) -> int:
        return len(self.starts)

    def length(self, u: int) -> int:
        return self.lengths[u]

    def groups(self, request_bytes: int) -> list[tuple[int, int]]:
        """Consecutive unit index ranges [u0, u1) of about `request_bytes` each (background fetch)."""
        g = self._groups.get(request_bytes)
        if g is None:
            g = []
            first, acc = 0, 0
            for i, n in enumerate(self.lengths):
                acc += n
                if acc >= request_bytes:
                    g.append((first, i + 1))
                    first, acc = i + 1, 0
            if first < len(self.lengths):
                g.append((first, len(self.lengths)))
            self._groups[request_bytes] = g
        return g


@dataclass
class SimLayer:
    digest: str
    blob_size: int
    format: LayerFormat
    compression: Compression
    uncompressed_bytes: int  # the tar stream a full pull decompresses and extracts
    toc: Toc | None  # None: a plain (non-lazy) layer, pulled in full by every mode
    files: dict[str, SimFile] = field(default_factory=dict)
    whiteouts: tuple[str, ...] = ()
    chunk_fileoff: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chunk_size: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chunk_cstart: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chunk_cstop: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chunk_zero: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    chunk_digest: list[str | None] = field(default_factory=list)
    _units: dict[tuple[str, int], Units] = field(default_factory=dict)

    @property
    def lazy(self) -> bool:
        return self.toc is not None

    @property
    def toc_bytes(self) -> int:
        """Bytes of the metadata a TOC fetch moves (TOC + tar-split, or footer + TOC)."""
        if self.toc is None:
            return 0
        n = self.toc.toc_range.length + (self.toc.tar_split_range.length if self.toc.tar_split_range else 0)
        if self.toc.format is LayerFormat.ESTARGZ:
            n += FOOTER_BYTES[LayerFormat.ESTARGZ]
        return n

    @property
    def toc_requests(self) -> list[tuple[int, int]]:
        """(bytes, ranges) of each request a TOC fetch makes (formats spec §2.2)."""
        assert self.toc is not None
        if self.toc.format is LayerFormat.ESTARGZ:
            return [(FOOTER_BYTES[LayerFormat.ESTARGZ], 1), (self.toc.toc_range.length, 1)]
        ranges = 2 if self.toc.tar_split_range else 1
        return [(self.toc_bytes, ranges)]

    @property
    def expansion(self) -> float:
        """Uncompressed bytes per compressed byte (decode cost of fetched units)."""
        return self.uncompressed_bytes / max(1, self.blob_size)

    @property
    def file_bytes(self) -> int:
        return int(self.chunk_size.sum())

    def units(self, granularity: str, block_bytes: int) -> Units:
        key = (granularity, block_bytes if granularity == "block" else 0)
        u = self._units.get(key)
        if u is None:
            u = self._build_units(granularity, block_bytes)
            self._units[key] = u
        return u

    def _build_units(self, granularity: str, block_bytes: int) -> Units:
        data = ~self.chunk_zero
        if granularity == "block":
            n = -(-self.blob_size // block_bytes)
            starts = np.arange(n, dtype=np.int64) * block_bytes
            stops = np.minimum(starts + block_bytes, self.blob_size)
            first = np.where(data, self.chunk_cstart // block_bytes, -1)
            last = np.where(
                data, (np.maximum(self.chunk_cstop, self.chunk_cstart + 1) - 1) // block_bytes, -1
            )
            return Units(starts, stops, first.astype(np.int64), last.astype(np.int64))
        pairs = sorted(
            {(int(a), int(b)) for a, b, d in zip(self.chunk_cstart, self.chunk_cstop, data, strict=True) if d}
        )
        index = {p: i for i, p in enumerate(pairs)}
        first = np.array(
            [
                index[(int(a), int(b))] if d else -1
                for a, b, d in zip(self.chunk_cstart, self.chunk_cstop, data, strict=True)
            ],
            dtype=np.int64,
        )
        starts = np.array([p[0] for p in pairs], dtype=np.int64)
        stops = np.array([p[1] for p in pairs], dtype=np.int64)
        return Units(starts, stops, first, first.copy())

    def chunks_for(self, f: SimFile, offset: int, length: int) -> range:
        """Chunk indices of `f` overlapping [offset, offset+length) of its content."""
        if length <= 0 or offset >= f.size or f.k0 == f.k1:
            return range(0)
        offs = self.chunk_fileoff
        lo = bisect.bisect_right(offs, offset, f.k0, f.k1) - 1
        hi = bisect.bisect_left(offs, offset + length, f.k0, f.k1)
        return range(max(lo, f.k0), hi)

    @classmethod
    def from_toc(cls, toc: Toc, *, digest: str, blob_size: int) -> SimLayer:
        fileoff: list[int] = []
        size: list[int] = []
        cstart: list[int] = []
        cstop: list[int] = []
        zero: list[bool] = []
        digests: list[str | None] = []
        files: dict[str, SimFile] = {}
        whiteouts: list[str] = []
        entries = 0
        for e in toc.entries:
            entries += 1
            base = posixpath.basename(e.path)
            if base.startswith(".wh.") and base != ".wh..wh..opq":
                whiteouts.append(posixpath.join(posixpath.dirname(e.path), base[4:]))
                continue
            if e.type is not EntryType.REG:
                continue
            k0 = len(size)
            for c in e.chunks:
                fileoff.append(c.file_offset)
                size.append(c.size)
                cstart.append(c.compressed.start)
                cstop.append(c.compressed.stop)
                zero.append(c.kind is ChunkKind.ZEROS)
                digests.append(c.digest)
            files[e.path] = SimFile(e.size, k0, len(size), e.digest or f"{digest}/{e.path}")
        file_bytes = sum(size)
        return cls(
            digest=digest,
            blob_size=blob_size,
            format=toc.format,
            compression=toc.compression,
            uncompressed_bytes=file_bytes + TAR_HEADER_BYTES * (entries + 2),
            toc=toc,
            files=files,
            whiteouts=tuple(whiteouts),
            chunk_fileoff=np.array(fileoff, dtype=np.int64),
            chunk_size=np.array(size, dtype=np.int64),
            chunk_cstart=np.array(cstart, dtype=np.int64),
            chunk_cstop=np.array(cstop, dtype=np.int64),
            chunk_zero=np.array(zero, dtype=bool),
            chunk_digest=digests,
        )

    @classmethod
    def plain(
        cls, *, digest: str, blob_size: int, compression: Compression, uncompressed_bytes: int
    ) -> SimLayer:
        fmt = LayerFormat.GZIP if compression is Compression.GZIP else LayerFormat.ZSTD
        return cls(
            digest=digest,
            blob_size=blob_size,
            format=fmt,
            compression=compression,
            uncompressed_bytes=uncompressed_bytes,
            toc=None,
        )


@dataclass
class SimImage:
    name: str
    layers: list[SimLayer]
    manifest_bytes: int
    config_bytes: int
    paths: dict[str, tuple[int, SimFile]] = field(default_factory=dict)  # overlay view: path -> (layer, file)

    def __post_init__(self) -> None:
        view: dict[str, tuple[int, SimFile]] = {}
        for i, layer in enumerate(self.layers):
            for w in layer.whiteouts:
                view.pop(w, None)
            for path, f in layer.files.items():
                view[path] = (i, f)
        self.paths = view

    def regular_files(self) -> list[tuple[str, int]]:
        """(path, size) of the merged view's regular files sorted by path, landmarks and the
        eStargz TOC entry left out — the list both engines give the trace generator."""
        return sorted(
            (p, f.size) for p, (_, f) in self.paths.items() if posixpath.basename(p) not in NOT_CONTENT
        )

    @property
    def blob_bytes(self) -> int:
        return sum(layer.blob_size for layer in self.layers)


# -- synthetic layers ------------------------------------------------------------------------------
def synthetic_toc(
    spec: SyntheticLayerSpec, seed: int, layers: dict[str, SyntheticLayerSpec]
) -> tuple[Toc, int]:
    """A TOC for a generated layer, laid out as its format would be; returns (toc, blob_size)."""
    plan = plan_layer(spec, seed, layers)
    fmt = LayerFormat.ESTARGZ if spec.format == "estargz" else LayerFormat.ZSTD_CHUNKED
    comp = Compression.GZIP if fmt is LayerFormat.ESTARGZ else Compression.ZSTD
    pos = 0
    entries: list[TocEntry] = []
    n_chunks = 0
    for f in plan:
        pos += HEADER_FRAME_BYTES
        chunks: list[Chunk] = []
        off = 0
        k = 0
        while off < f.size_bytes:
            n = min(spec.chunk_bytes, f.size_bytes - off)
            clen = max(1, round(n * spec.compression_ratio))
            chunks.append(Chunk(off, n, ByteRange(pos, pos + clen), f"synth:{f.content_key}:{k}"))
            pos += clen
            off += n
            k += 1
        n_chunks += len(chunks)
        entries.append(
            TocEntry(
                path=f.path,
                name=f.path,
                type=EntryType.REG,
                mode=0o644,
                size=f.size_bytes,
                digest=f"synth:{f.content_key}",
                chunks=tuple(chunks),
            )
        )
    pos += HEADER_FRAME_BYTES  # end-of-archive
    toc_len = TOC_BYTES_PER_ENTRY * len(plan) + TOC_BYTES_PER_CHUNK * max(0, n_chunks - len(plan))
    toc_range = ByteRange(pos, pos + toc_len)
    pos = toc_range.stop
    tar_split = None
    if fmt is LayerFormat.ZSTD_CHUNKED:
        tar_split = ByteRange(pos, pos + TARSPLIT_BYTES_PER_ENTRY * len(plan))
        pos = tar_split.stop
    blob_size = pos + FOOTER_BYTES[fmt]
    h = hashlib.sha256(f"{spec!r}:{seed}".encode()).hexdigest()
    toc = Toc(
        format=fmt,
        compression=comp,
        entries=tuple(entries),
        digest=f"sha256:{h}",
        toc_range=toc_range,
        blob_size=blob_size,
        tar_split_digest=None,
        tar_split_range=tar_split,
    )
    return toc, blob_size


def synthetic_image(
    spec: SyntheticImageSpec,
    seed: int,
    all_layers: dict[str, SyntheticLayerSpec],
    cache: dict[str, SimLayer],
    *,
    manifest_bytes: int,
    config_bytes: int,
) -> SimImage:
    layers = []
    for ls in spec.layers:
        if ls.name not in cache:
            toc, blob_size = synthetic_toc(ls, seed, all_layers)
            digest = "sha256:" + hashlib.sha256(f"layer:{ls!r}:{seed}".encode()).hexdigest()
            cache[ls.name] = SimLayer.from_toc(toc, digest=digest, blob_size=blob_size)
        layers.append(cache[ls.name])
    return SimImage(spec.name, layers, manifest_bytes, config_bytes)


def oci_image(name: str, layout_dir: str, tag: str, cache: dict[str, SimLayer]) -> SimImage:
    """Read an OCI layout's image: real TOCs through `imageformat` (plain layers: no TOC)."""
    from imageformat.detect import compression_of, read_layer_toc
    from imageformat.errors import FormatError
    from imageformat.oci import OciLayout

    try:
        layout = OciLayout.open(layout_dir)
        img = layout.resolve(tag)
        layers = []
        for d in img.layers:
            if d.digest not in cache:
                with layout.open_blob(d) as fh:
                    toc = read_layer_toc(d.media_type, d.annotations, fh, d.size)
                if toc is not None:
                    cache[d.digest] = SimLayer.from_toc(toc, digest=d.digest, blob_size=d.size)
                else:
                    ratio_guess = 2.5  # plain layers: uncompressed size unknown without decoding
                    cache[d.digest] = SimLayer.plain(
                        digest=d.digest,
                        blob_size=d.size,
                        compression=compression_of(d.media_type),
                        uncompressed_bytes=int(d.size * ratio_guess),
                    )
            layers.append(cache[d.digest])
        return SimImage(name, layers, img.manifest_descriptor.size, img.manifest.config.size)
    except (FormatError, OSError, KeyError) as e:
        raise ImageError(f"image {name!r} ({layout_dir}:{tag}): {e}") from None
