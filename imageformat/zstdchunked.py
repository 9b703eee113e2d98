"""zstd:chunked encoder, both generations (spec formats.md §1.2-§1.6, §1.10, §1.13).

Public API:

    encode_zstd_chunked(src, dst, *, generation="b", level=DEFAULT_LEVEL, threads=...) -> EncodedLayer
        src: seekable binary file holding an uncompressed tar; dst: binary file the blob is
        written to. Generation "b" = containers/storage >= 1.55 (tar-split, 64-byte footer,
        `io.github.containers.zstd-chunked.*` annotations); "a" = containers/storage 1.43 as in
        skopeo 1.9.3 (40-byte footer, `io.containers.zstd-chunked.*`, zero-time stamps). Both
        keep the bytes after the tar's end-of-archive marker, so the decompressed blob is `src`
        byte for byte and `diff_id` = sha256(src). `threads`: compression threads per batch of
        frames (-1 = all cores, 1 = compress inline).
    skippable_frame(payload) -> bytes: a zstd skippable frame as c/storage writes them.
    ANNOTATION_PREFIX_A / ANNOTATION_PREFIX_B, MANIFEST_CHECKSUM, MANIFEST_POSITION,
    TARSPLIT_POSITION: annotation key suffixes.
    DEFAULT_LEVEL: the zstd level used by default (see below).

Frames: each non-empty regular file's chunks (imageformat.chunker) are zstd frames holding
only that chunk; the raw tar header bytes between payloads go into metadata frames. Frames are
compressed in batches with python-zstandard's multi-threaded `multi_compress_to_buffer`
(every frame stays an independent zstd frame with a content checksum).

Level: DEFAULT_LEVEL = 10, the level c/storage uses (klauspost "SpeedBestCompression"; libzstd
level 10 gives about the same ratio). Measured in one run on 2 heavily shared cores (load 7-10),
`skopeo copy --dest-compress-format zstd:chunked` vs this encoder on the same tar:
74.7 MB mixed tar (random + text + zeros + 2000 small files): skopeo 11.2-15.1 s; level 10
gen a 6.4-7.0 s, gen b 7.3-7.7 s; level 3 gen b 3.3-4.3 s (output 1.5 % larger).
56.9 MB tar of 12 000 small files: skopeo 14.8-21.4 s; level 10 gen a 5.1-7.3 s, gen b 9.2-9.5 s.
Level 10 is therefore no slower than skopeo and the spec default stands; pass `level` to trade
ratio for speed.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

import zstandard

from imageformat.chunker import ChunkSpan, find_chunks_many
from imageformat.errors import DuplicateEntryError, UnsafePathError
from imageformat.gojson import GO_ZERO_NS, GO_ZERO_TIME, go_string, go_time
from imageformat.layer import MEDIA_TYPE_ZSTD, EncodedLayer
from imageformat.tarscan import TarIndex, TarMember, scan_tar
from imageformat.tarsplit import crc64_iso_many, file_line, segment_line, trailing_segments
from imageformat.toc import LayerFormat, normalize_path
from imageformat.zstdframes import SKIPPABLE_MAGIC, FrameSink, skippable_frame, source_view

DEFAULT_LEVEL = 10
ANNOTATION_PREFIX_A = "io.containers.zstd-chunked."
ANNOTATION_PREFIX_B = "io.github.containers.zstd-chunked."
MANIFEST_CHECKSUM = "manifest-checksum"
MANIFEST_POSITION = "manifest-position"
TARSPLIT_POSITION = "tarsplit-position"
MAGIC_A = b"GnUlInUx"
MAGIC_B = b"GNUlInUx"
MANIFEST_TYPE_CRFS = 1
_GROUP_BYTES = 8 << 20  # payload bytes chunked / CRC'd per numpy pass

Generation = Literal["a", "b"]


@dataclass
class _FileFrames:
    member: TarMember
    digest: str
    spans: list[ChunkSpan]
    chunk_digests: list[str]
    frame_ids: list[int]


@dataclass
class _TocBuilder:
    generation: Generation
    lines: list[str] = field(default_factory=list)

    def add_member(self, m: TarMember, frames: _FileFrames | None, sink: FrameSink) -> None:
        gen_a = self.generation == "a"
        parts = [f'"type":"{m.type_name}"', f'"name":{go_string(m.name)}']
        if m.linkname:
            parts.append(f'"linkName":{go_string(m.linkname)}')
        for key, value in (("mode", m.mode), ("size", m.size), ("uid", m.uid), ("gid", m.gid)):
            if value:
                parts.append(f'"{key}":{value}')
        if gen_a or m.mtime_ns != GO_ZERO_NS:
            parts.append(f'"modtime":{go_time(m.mtime_ns)}')
        for key, ns in (("accesstime", m.atime_ns), ("changetime", m.ctime_ns)):
            if ns is not None and ns != GO_ZERO_NS:
                parts.append(f'"{key}":{go_time(ns)}')
            elif gen_a:
                parts.append(f'"{key}":"{GO_ZERO_TIME}"')
        if m.devmajor:
            parts.append(f'"devMajor":{m.devmajor}')
        if m.devminor:
            parts.append(f'"devMinor":{m.devminor}')
        if m.xattrs:
            b64 = {k: base64.b64encode(v).decode("ascii") for k, v in m.xattrs.items()}
            xs = ",".join(f'{go_string(k)}:"{v}"' for k, v in sorted(b64.items()))
            parts.append(f'"xattrs":{{{xs}}}')
        if frames is not None:
            parts.append(f'"digest":"{frames.digest}"')
            parts.append(f'"offset":{sink.starts[frames.frame_ids[0]]}')
            parts.append(f'"endOffset":{sink.ends[frames.frame_ids[-1]]}')
            if len(frames.spans) > 1:
                parts.extend(_chunk_fields(frames.spans[0], frames.chunk_digests[0]))
        self.lines.append("{" + ",".join(parts) + "}")
        if frames is not None and len(frames.spans) > 1:
            name = go_string(m.name)
            rest = zip(frames.spans[1:], frames.chunk_digests[1:], frames.frame_ids[1:], strict=True)
            for span, dig, fid in rest:
                fields = ['"type":"chunk"', f'"name":{name}', f'"offset":{sink.starts[fid]}']
                fields.extend(_chunk_fields(span, dig))
                self.lines.append("{" + ",".join(fields) + "}")

    def json(self, tar_split_digest: str | None) -> bytes:
        body = '{"version":1,"entries":[' + ",".join(self.lines) + "]"
        if tar_split_digest is not None:
            body += f',"tarSplitDigest":"{tar_split_digest}"'
        return (body + "}").encode("utf-8", "surrogateescape")


def _chunk_fields(span: ChunkSpan, digest: str) -> list[str]:
    out = [f'"chunkSize":{span.size}']
    if span.offset:
        out.append(f'"chunkOffset":{span.offset}')
    out.append(f'"chunkDigest":"{digest}"')
    if span.zeros:
        out.append('"chunkType":"zeros"')
    return out


def _sha(data: memoryview | bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def encode_zstd_chunked(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    generation: Generation = "b",
    level: int = DEFAULT_LEVEL,
    threads: int = -1,
) -> EncodedLayer:
    """Compress the tar in `src` into a zstd:chunked blob written to `dst` (see module docstring).

    Raises InvalidTarError / UnsupportedEntryError for tars c/storage would refuse,
    UnsafePathError for names with `..`, DuplicateEntryError for a path twice in generation b.
    """
    if generation not in ("a", "b"):
        raise ValueError(f"generation (={generation!r}) must be 'a' or 'b'")
    src.seek(0)
    index = scan_tar(src)
    sink = FrameSink(dst, level, threads)
    try:
        with source_view(src) as buf:
            try:
                file_frames, ts_lines = _encode_frames(buf, index, sink, generation)
            finally:
                sink.close()  # no frame may still reference `buf` when it is released
            diff_id = _sha(buf)
            total = len(buf)
        toc = _TocBuilder(generation)
        for m, frames in file_frames:
            toc.add_member(m, frames, sink)
        return _finish(sink, toc, ts_lines, generation, level, diff_id, total)
    finally:
        sink.close()


def _groups(members: list[TarMember]) -> Iterator[list[TarMember]]:
    """Consecutive members holding about _GROUP_BYTES of payload: chunked and CRC'd together."""
    group: list[TarMember] = []
    size = 0
    for m in members:
        group.append(m)
        size += m.payload_size
        if size >= _GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def _check_name(m: TarMember, generation: Generation, seen: set[str]) -> None:
    try:
        clean = normalize_path(m.name)
    except ValueError:
        raise UnsafePathError(f"tar entry name {m.name!r} escapes the root") from None
    if m.name.startswith("/"):
        raise UnsafePathError(f"absolute tar entry name {m.name!r}")
    if generation == "b":
        if clean in seen:
            raise DuplicateEntryError(f"{m.name!r} appears twice (tar-split forbids it)")
        seen.add(clean)


def _encode_frames(
    buf: memoryview, index: TarIndex, sink: FrameSink, generation: Generation
) -> tuple[list[tuple[TarMember, _FileFrames | None]], list[bytes]]:
    """Write every data frame (formats.md §1.4); return per-member frame facts and tar-split lines.

    Members are handled in groups: the chunk boundaries and tar-split CRCs of a group's files are
    computed in one numpy pass each, while the worker thread compresses the previous group.
    """
    ts_lines: list[bytes] = []
    seen: set[str] = set()
    meta = bytearray()
    file_frames: list[tuple[TarMember, _FileFrames | None]] = []
    for group in _groups(index.members):
        for m in group:
            _check_name(m, generation, seen)
        regs = [m for m in group if m.is_reg and m.payload_size > 0]
        payloads = [buf[m.data_start : m.payload_end] for m in regs]
        spans_of = dict(zip((id(m) for m in regs), find_chunks_many(payloads), strict=True))
        crc_of = (
            dict(zip((id(m) for m in regs), crc64_iso_many(payloads), strict=True))
            if generation == "b"
            else {}
        )
        del payloads
        for m in group:
            raw = buf[m.header_start : m.data_start]
            meta += raw
            if generation == "b":
                ts_lines.append(segment_line(raw, len(ts_lines)))
            frames = None
            if m.is_reg and m.payload_size > 0:
                content = buf[m.data_start : m.payload_end]
                if meta:
                    sink.add(bytes(meta))
                    meta = bytearray()
                spans = spans_of[id(m)]
                digest = _sha(content)
                chunk_digests = (
                    [digest] if len(spans) == 1 else [_sha(content[s.offset : s.end]) for s in spans]
                )
                ids = [sink.add(content[s.offset : s.end]) for s in spans]
                frames = _FileFrames(m, digest, spans, chunk_digests, ids)
            if generation == "b":
                ts_lines.append(file_line(m.name, m.payload_size, crc_of.get(id(m)), len(ts_lines)))
            file_frames.append((m, frames))
    meta += buf[index.entries_end :]
    if meta:
        sink.add(bytes(meta))
    if generation == "b":
        ts_lines.append(segment_line(buf[index.entries_end : index.eoa_end], len(ts_lines)))
        for piece in trailing_segments(buf[index.eoa_end :], index.eoa_end):
            ts_lines.append(segment_line(piece, len(ts_lines)))
    sink.drain()  # pending frames reference `buf`: written before it goes away
    return file_frames, ts_lines


def _finish(
    sink: FrameSink,
    toc: _TocBuilder,
    ts_lines: list[bytes],
    generation: Generation,
    level: int,
    diff_id: str,
    total: int,
) -> EncodedLayer:
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
    ts_digest = None
    if generation == "b":
        ts_json = b"".join(ts_lines)
        ts_c = cctx.compress(ts_json)
        ts_digest = _sha(ts_c)
    toc_json = toc.json(ts_digest)
    toc_c = cctx.compress(toc_json)
    toc_offset = sink.write_raw(skippable_frame(toc_c)) + 8
    toc_digest = _sha(toc_c)
    position = f"{toc_offset}:{len(toc_c)}:{len(toc_json)}:{MANIFEST_TYPE_CRFS}"
    if generation == "b":
        ts_offset = sink.write_raw(skippable_frame(ts_c)) + 8
        footer = struct.pack(
            "<7Q",
            toc_offset,
            len(toc_c),
            len(toc_json),
            MANIFEST_TYPE_CRFS,
            ts_offset,
            len(ts_c),
            len(ts_json),
        )
        sink.write_raw(skippable_frame(footer + MAGIC_B))
        p = ANNOTATION_PREFIX_B
        annotations = {
            p + MANIFEST_CHECKSUM: toc_digest,
            p + MANIFEST_POSITION: position,
            p + TARSPLIT_POSITION: f"{ts_offset}:{len(ts_c)}:{len(ts_json)}",
        }
        fmt = LayerFormat.ZSTD_CHUNKED
    else:
        footer = struct.pack("<4Q", toc_offset, len(toc_c), len(toc_json), MANIFEST_TYPE_CRFS)
        sink.write_raw(skippable_frame(footer + MAGIC_A))
        p = ANNOTATION_PREFIX_A
        annotations = {p + MANIFEST_CHECKSUM: toc_digest, p + MANIFEST_POSITION: position}
        fmt = LayerFormat.ZSTD_CHUNKED_LEGACY
    return EncodedLayer(
        format=fmt,
        media_type=MEDIA_TYPE_ZSTD,
        digest="sha256:" + sink.hasher.hexdigest(),
        size=sink.pos,
        diff_id=diff_id,
        uncompressed_size=total,
        annotations=annotations,
        toc_digest=toc_digest,
    )


__all__ = [
    "ANNOTATION_PREFIX_A",
    "ANNOTATION_PREFIX_B",
    "DEFAULT_LEVEL",
    "MAGIC_A",
    "MAGIC_B",
    "MANIFEST_CHECKSUM",
    "MANIFEST_POSITION",
    "SKIPPABLE_MAGIC",
    "TARSPLIT_POSITION",
    "Generation",
    "encode_zstd_chunked",
    "skippable_frame",
]
