"""Verifying an image end to end: blobs, streams, TOCs, every file two ways.

For each layer: the blob's digest and size; the whole blob decoded as a stream (capped) whose
sha256 must equal the config's diff_id, walked as a tar; for lazy formats the TOC located and
authenticated, every regular file read back from its TOC ranges alone and compared with the
TOC digest and with the stream's copy, chunks tiling each file, and the same entries on both
sides. The first problem is raised as a `FormatError` subclass whose message names the layer.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from imageformat.byterange import ByteRange
from imageformat.detect import GENERATIONS, as_fetch, compression_of, detect_format, read_layer_toc
from imageformat.errors import ContentDigestError, FormatError, TocError
from imageformat.estargz_toc import MAX_TOC_BYTES
from imageformat.fileread import read_file
from imageformat.layer import ChunkDecodeError
from imageformat.oci import Descriptor, OciLayout
from imageformat.plain import BLOCK_BYTES, DEFAULT_MAX_DECOMPRESSED_BYTES, DecompressedReader
from imageformat.toc import EntryType, LayerFormat, Toc, TocEntry
from imageformat.tree import ESTARGZ_TOC_NAME, check_member

Fetch = Callable[[ByteRange], bytes]
_TAR_TYPES = {
    tarfile.REGTYPE: EntryType.REG, tarfile.AREGTYPE: EntryType.REG, tarfile.DIRTYPE: EntryType.DIR,
    tarfile.SYMTYPE: EntryType.SYMLINK, tarfile.LNKTYPE: EntryType.HARDLINK, tarfile.CHRTYPE: EntryType.CHAR,
    tarfile.BLKTYPE: EntryType.BLOCK, tarfile.FIFOTYPE: EntryType.FIFO,
}


@dataclass(frozen=True, kw_only=True)
class StreamEntry:
    type: EntryType
    size: int
    digest: str | None  # sha256 of the content (regular files)
    link_name: str


@dataclass(frozen=True, kw_only=True)
class LayerReport:
    """What one layer is and what was checked (also what `inspect` prints)."""

    index: int
    media_type: str
    digest: str
    compressed_size: int
    diff_id: str
    format: LayerFormat
    generation: str
    uncompressed_size: int
    entries: int  # tar entries in the stream
    files: int  # regular files
    file_bytes: int
    chunks: int  # TOC chunks (0 for plain layers)
    toc_bytes: int  # compressed TOC size (0 for plain layers)
    toc_digest: str | None


@dataclass(frozen=True, kw_only=True)
class ImageReport:
    oci_dir: Path
    tag: str | None
    manifest_digest: str
    layers: tuple[LayerReport, ...]


def hash_blob(f: BinaryIO) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    f.seek(0)
    while block := f.read(BLOCK_BYTES):
        h.update(block)
        n += len(block)
    return "sha256:" + h.hexdigest(), n


def walk_stream(reader: DecompressedReader) -> dict[str, StreamEntry]:
    """Path -> entry of the decompressed tar (last copy of a path wins, as on extraction)."""
    out: dict[str, StreamEntry] = {}
    try:
        tf = tarfile.open(fileobj=reader, mode="r|")  # type: ignore[call-overload]
        for ti in tf:
            path = check_member(ti)
            digest = None
            if ti.isreg():
                h = hashlib.sha256()
                f = tf.extractfile(ti)
                assert f is not None
                while block := f.read(BLOCK_BYTES):
                    h.update(block)
                digest = "sha256:" + h.hexdigest()
            out[path] = StreamEntry(type=_TAR_TYPES[ti.type], size=ti.size if ti.isreg() else 0,
                                    digest=digest, link_name=ti.linkname)
    except tarfile.TarError as e:
        raise FormatError(f"decompressed stream is not a valid tar: {e}") from None
    reader.drain()
    return out


def read_toc_file(toc: Toc, entry: TocEntry, fetch: Fetch) -> bytes:
    """A regular file's content from its TOC ranges alone (chunk and file digests checked)."""
    try:
        return read_file(toc, entry.path, lambda ranges: [fetch(r) for r in ranges])
    except ChunkDecodeError as e:
        raise ContentDigestError(f"{entry.path}: {e}") from None


def check_toc_against_stream(toc: Toc, stream: dict[str, StreamEntry], fetch: Fetch) -> None:
    """Every TOC entry matches the stream, and every file reads back from its ranges alone."""
    toc_paths = set(toc.by_path)
    stream_paths = set(stream) - {ESTARGZ_TOC_NAME}
    if toc_paths != stream_paths:
        missing = sorted(stream_paths - toc_paths)[:3]
        extra = sorted(toc_paths - stream_paths)[:3]
        raise TocError(f"TOC and stream list different entries (not in TOC: {missing}, only in TOC: {extra})")
    for path, entry in toc.by_path.items():
        s = stream[path]
        if entry.type is not s.type or entry.size != s.size:
            raise TocError(f"{path}: TOC says {entry.type.value} of {entry.size} bytes, "
                           f"stream has {s.type.value} of {s.size} bytes")
        if entry.type in (EntryType.SYMLINK, EntryType.HARDLINK) and entry.link_name != s.link_name:
            raise TocError(f"{path}: TOC link target {entry.link_name!r} != stream's {s.link_name!r}")
        if not entry.is_reg:
            continue
        pos = 0
        for c in entry.chunks:
            if c.file_offset != pos:
                raise TocError(f"{path}: chunk at {c.file_offset} does not follow the previous one ({pos})")
            pos += c.size
        if pos != entry.size:
            raise TocError(f"{path}: chunks cover {pos} of {entry.size} bytes")
        data = read_toc_file(toc, entry, fetch) if entry.size else b""
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if entry.digest is not None and got != entry.digest:
            raise ContentDigestError(f"{path}: content read through the TOC has {got}, "
                                     f"TOC says {entry.digest}")
        if got != s.digest:
            raise ContentDigestError(f"{path}: content read through the TOC differs from the stream's")


def check_layer(layout: OciLayout, index: int, desc: Descriptor, diff_id: str, *, deep: bool = True,
                max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> LayerReport:
    """Check (deep=True) or just describe (deep=False) one layer; see the module docstring."""
    compression = compression_of(desc.media_type)
    with layout.open_blob(desc) as blob:
        digest, size = hash_blob(blob)
        if digest != desc.digest:
            raise ContentDigestError(f"blob content has {digest}, descriptor says {desc.digest}")
        fetch = as_fetch(blob)
        fmt = detect_format(desc.media_type, desc.annotations, fetch, size)
        toc = read_layer_toc(desc.media_type, desc.annotations, fetch, size)
        if toc is not None and toc.toc_range.length > MAX_TOC_BYTES:
            raise TocError(f"TOC of {toc.toc_range.length} bytes exceeds {MAX_TOC_BYTES}")
        blob.seek(0)
        reader = DecompressedReader(compression, blob, max_bytes=max_decompressed_bytes)
        stream = walk_stream(reader)
        if reader.digest() != diff_id:
            pads = range(512, 20481, 512)
            dropped = next((n for n in pads if reader.digest_with_zeros(n) == diff_id), None)
            if dropped is not None:
                raise ContentDigestError(
                    f"decompressed stream lacks the tar's last {dropped} zero bytes, so it does not match "
                    f"the config diff_id (zstd:chunked generation (a) writer quirk, formats spec §1.9)")
            raise ContentDigestError(f"decompressed stream has {reader.digest()}, "
                                     f"config diff_id is {diff_id}")
        if deep and toc is not None:
            check_toc_against_stream(toc, stream, fetch)
            if toc.tar_split_digest is not None and toc.tar_split_range is not None:
                from imageformat.zstdchunked_toc import load_tar_split

                load_tar_split(toc, fetch(toc.tar_split_range))  # tarSplitDigest + same entries as the TOC
    files = [e for p, e in stream.items() if e.type is EntryType.REG and p != ESTARGZ_TOC_NAME]
    return LayerReport(
        index=index, media_type=desc.media_type, digest=desc.digest, compressed_size=size, diff_id=diff_id,
        format=fmt, generation=GENERATIONS[fmt], uncompressed_size=reader.size, entries=len(stream),
        files=len(files), file_bytes=sum(e.size for e in files),
        chunks=toc.chunk_count if toc else 0, toc_bytes=toc.toc_range.length if toc else 0,
        toc_digest=toc.digest if toc else None,
    )


def examine_image(oci_dir: Path | str, tag: str | None = None, *, deep: bool = True,
                  max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> ImageReport:
    layout = OciLayout.open(oci_dir)
    image = layout.resolve(tag)
    reports = []
    for i, (desc, diff_id) in enumerate(zip(image.layers, image.diff_ids, strict=True)):
        try:
            reports.append(check_layer(layout, i, desc, diff_id, deep=deep,
                                       max_decompressed_bytes=max_decompressed_bytes))
        except FormatError as e:
            raise type(e)(f"layer {i} ({desc.digest[:19]}…): {e}") from None
    return ImageReport(oci_dir=Path(oci_dir), tag=image.tag, manifest_digest=image.manifest_descriptor.digest,
                       layers=tuple(reports))


def verify_image(oci_dir: Path | str, tag: str | None = None, *,
                 max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> ImageReport:
    """Check everything (module docstring); raises the first problem as a FormatError subclass."""
    return examine_image(oci_dir, tag, deep=True, max_decompressed_bytes=max_decompressed_bytes)


__all__ = ["ImageReport", "LayerReport", "StreamEntry", "check_layer", "examine_image", "verify_image",
           "walk_stream"]
