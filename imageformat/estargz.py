"""eStargz encoder (stargz-snapshotter `estargz.Writer`; formats spec §3.1-§3.5).

The input tar's entries are re-serialised (PAX headers) into a blob of gzip members: a member
starts at each non-empty regular file's payload and at every `chunk_size` step inside it; the
file's padding and the headers of following entries stay in that member. The TOC
(`stargz.index.json`, tab-indented JSON) is the last tar entry, alone in its member with the
end-of-archive blocks, followed by the 51-byte footer. Without a landmark in the input,
`.no.prefetch.landmark` is written first.

`compression=Compression.ZSTD` writes stargz-snapshotter's `zstdchunked` variant instead
(§3.7: zstd frames with the same member rules, JTOC in a skippable frame, 40-byte `GnUlInUx`
footer, no end-of-archive); it exists so the decoder for that variant can be tested.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import tarfile
import time
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

import zstandard

from imageformat.digest import Hasher
from imageformat.errors import InvalidTarError
from imageformat.layer import MEDIA_TYPE_GZIP, MEDIA_TYPE_ZSTD, EncodedLayer
from imageformat.toc import Compression, LayerFormat, normalize_path
from imageformat.tree import (
    ESTARGZ_TOC_NAME,
    LANDMARK_CONTENT,
    LANDMARKS,
    NO_PREFETCH_LANDMARK,
    landmark_info,
    read_members,
)

DEFAULT_CHUNK_BYTES = 4 << 20
TOC_DIGEST_ANNOTATION = "containerd.io/snapshot/stargz/toc.digest"
UNCOMPRESSED_SIZE_ANNOTATION = "io.containers.estargz.uncompressed-size"
LEGACY_ZSTD_CHECKSUM_ANNOTATION = "io.containers.zstd-chunked.manifest-checksum"
LEGACY_ZSTD_POSITION_ANNOTATION = "io.containers.zstd-chunked.manifest-position"
ZSTD_SKIPPABLE_MAGIC = 0x184D2A50
GEN_A_MAGIC = b"GnUlInUx"
_TYPES = {
    tarfile.REGTYPE: "reg", tarfile.AREGTYPE: "reg", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}


def estargz_footer(toc_offset: int) -> bytes:
    """The 51-byte footer: an empty gzip member whose FEXTRA 'SG' field holds the TOC offset."""
    extra = b"SG" + struct.pack("<H", 22) + b"%016xSTARGZ" % toc_offset
    header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", len(extra)) + extra
    return header + b"\x01\x00\x00\xff\xff" + bytes(8)


class _MemberWriter:
    """Compressed members (gzip) or frames (zstd), opened lazily, closed on demand."""

    def __init__(self, dst: BinaryIO, compression: Compression, level: int) -> None:
        self.dst, self.compression, self.level = dst, compression, level
        self.offset = 0  # compressed bytes written so far
        self.raw = Hasher()
        self.raw_size = 0
        self.blob = Hasher()
        self._cur: Any = None
        self.member_start = 0  # blob offset of the open member
        self.member_raw = 0  # uncompressed bytes written into the open member
        self._zctx = zstandard.ZstdCompressor(level=level, write_checksum=True)

    def _emit(self, data: bytes) -> None:
        if data:
            self.dst.write(data)
            self.blob.update(data)
            self.offset += len(data)

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._cur is None:
            self.member_start, self.member_raw = self.offset, 0
            if self.compression is Compression.GZIP:
                self._cur = zlib.compressobj(self.level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            else:
                self._cur = self._zctx.compressobj()
        self.raw.update(data)
        self.raw_size += len(data)
        self.member_raw += len(data)
        self._emit(self._cur.compress(data))

    def close(self) -> None:
        if self._cur is not None:
            self._emit(self._cur.flush())
            self._cur = None

    @property
    def is_open(self) -> bool:
        return self._cur is not None

    def write_raw(self, data: bytes) -> None:
        """Bytes outside any member (footer, skippable frames)."""
        self.close()
        self._emit(data)


def _modtime(mtime: float) -> str | None:
    seconds = int(mtime // 1)
    if seconds == 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _entry_json(ti: tarfile.TarInfo, names_seen: dict[tuple[str, int], str]) -> dict[str, Any]:
    ent: dict[str, Any] = {"name": ti.name.removeprefix("./"), "type": _TYPES[ti.type]}
    if ti.isdir() and not ent["name"].endswith("/"):
        ent["name"] += "/"
    if ti.isreg() and ti.size:
        ent["size"] = ti.size
    if (mt := _modtime(ti.mtime)) is not None:
        ent["modtime"] = mt
    if ti.linkname and ti.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        ent["linkName"] = ti.linkname
    if ti.mode:
        ent["mode"] = ti.mode
    if ti.uid:
        ent["uid"] = ti.uid
    if ti.gid:
        ent["gid"] = ti.gid
    for key, ident, name in (("userName", ti.uid, ti.uname), ("groupName", ti.gid, ti.gname)):
        if name and names_seen.get((key, ident)) != name:
            names_seen[(key, ident)] = name
            ent[key] = name
    if ti.ischr() or ti.isblk():
        if ti.devmajor:
            ent["devMajor"] = ti.devmajor
        if ti.devminor:
            ent["devMinor"] = ti.devminor
    xattrs = {k.removeprefix("SCHILY.xattr."): v for k, v in sorted(ti.pax_headers.items())
              if k.startswith("SCHILY.xattr.")}
    if xattrs:
        ent["xattrs"] = {k: base64.b64encode(v.encode("utf-8", "surrogateescape")).decode()
                         for k, v in xattrs.items()}
    return ent


def _header(ti: tarfile.TarInfo) -> bytes:
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _write_payload(out: _MemberWriter, ti: tarfile.TarInfo, read: Callable[[int], bytes],
                   ent: dict[str, Any], entries: list[dict[str, Any]], chunk_bytes: int,
                   min_chunk_bytes: int) -> None:
    file_hash = hashlib.sha256()
    written = 0
    piece = ent
    landmark = normalize_path(ti.name) in LANDMARKS
    while written < ti.size:
        n = min(chunk_bytes, ti.size - written)
        if ti.size - written >= chunk_bytes:
            piece["chunkSize"] = n
        if out.is_open and out.member_raw < min_chunk_bytes and not landmark:
            piece["offset"] = out.member_start  # share the member (stargz WithMinChunkSize)
            piece["innerOffset"] = out.member_raw
        else:
            out.close()
            piece["offset"] = out.offset
        if written:
            piece["chunkOffset"] = written
        data = read(n)
        if len(data) != n:
            raise tarfile.ReadError(f"{ti.name}: tar ends inside the file")
        file_hash.update(data)
        out.write(data)
        piece["chunkDigest"] = "sha256:" + hashlib.sha256(data).hexdigest()
        entries.append(piece)
        written += n
        piece = {"name": ent["name"], "type": "chunk"}
    ent["digest"] = "sha256:" + file_hash.hexdigest()
    out.write(bytes(-ti.size % 512))


def _order_key(entry: dict[str, Any]) -> list[str]:
    keys = ["name", "type", "size", "modtime", "linkName", "mode", "uid", "gid", "userName", "groupName",
            "offset", "innerOffset", "devMajor", "devMinor", "xattrs", "digest", "chunkOffset", "chunkSize",
            "chunkDigest"]
    return [k for k in keys if k in entry]


def toc_json_bytes(entries: list[dict[str, Any]]) -> bytes:
    ordered = [{k: e[k] for k in _order_key(e)} for e in entries]
    return json.dumps({"version": 1, "entries": ordered}, indent="\t", ensure_ascii=False).encode()


def encode_estargz(src: BinaryIO, dst: BinaryIO, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, level: int = 9,
                   compression: Compression = Compression.GZIP, min_chunk_bytes: int = 0) -> EncodedLayer:
    """Encode the (seekable) tar `src` as eStargz into `dst`.

    `min_chunk_bytes` > 0 packs payloads into the open member until it holds that many
    uncompressed bytes (entries then share `offset` and differ by `innerOffset`; stargz's
    WithMinChunkSize counts compressed bytes). Old readers and containers/storage ignore
    innerOffset, so the default (0) gives every payload its own member.
    """
    try:
        return _encode(src, dst, chunk_bytes=chunk_bytes, level=level, compression=compression,
                       min_chunk_bytes=min_chunk_bytes)
    except (tarfile.TarError, EOFError) as e:
        raise InvalidTarError(f"input is not a valid tar: {e}") from None


def _encode(src: BinaryIO, dst: BinaryIO, *, chunk_bytes: int, level: int,
            compression: Compression, min_chunk_bytes: int) -> EncodedLayer:
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes (={chunk_bytes}) must be > 0")
    members = read_members(src)
    last = {normalize_path(ti.name): ti for ti in members}
    keep = [ti for ti in members if last[normalize_path(ti.name)] is ti
            and normalize_path(ti.name) != ESTARGZ_TOC_NAME]
    src.seek(0)
    tf = tarfile.open(fileobj=src, mode="r:")
    out = _MemberWriter(dst, compression, level)
    entries: list[dict[str, Any]] = []
    names_seen: dict[tuple[str, int], str] = {}
    synthetic: set[int] = set()
    if not any(normalize_path(ti.name) in LANDMARKS for ti in keep):
        lm = landmark_info(NO_PREFETCH_LANDMARK)
        synthetic.add(id(lm))
        keep.insert(0, lm)
    for ti in keep:
        ent = _entry_json(ti, names_seen)
        out.write(_header(ti))
        if ti.isreg() and ti.size:
            reader: BinaryIO
            if id(ti) in synthetic:
                reader = io.BytesIO(LANDMARK_CONTENT)
            else:
                f = tf.extractfile(ti)
                assert f is not None
                reader = f  # type: ignore[assignment]
            _write_payload(out, ti, reader.read, ent, entries, chunk_bytes, min_chunk_bytes)
        else:
            if ti.isreg():
                ent["digest"] = "sha256:" + hashlib.sha256(b"").hexdigest()
            entries.append(ent)
    out.close()
    toc_json = toc_json_bytes(entries)
    toc_digest = "sha256:" + hashlib.sha256(toc_json).hexdigest()
    annotations = {TOC_DIGEST_ANNOTATION: toc_digest}
    if compression is Compression.GZIP:
        toc_offset = out.offset
        toc_ti = tarfile.TarInfo(ESTARGZ_TOC_NAME)
        toc_ti.size, toc_ti.mode, toc_ti.mtime, toc_ti.uname, toc_ti.gname = len(toc_json), 0, 0, "", ""
        out.write(toc_ti.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict") + toc_json
                  + bytes(-len(toc_json) % 512) + bytes(1024))
        out.write_raw(estargz_footer(toc_offset))
        fmt, media_type = LayerFormat.ESTARGZ, MEDIA_TYPE_GZIP
    else:
        packed = zstandard.ZstdCompressor(level=level, write_checksum=True).compress(toc_json)
        toc_offset = out.offset + 8
        out.write_raw(struct.pack("<II", ZSTD_SKIPPABLE_MAGIC, len(packed)) + packed)
        footer = struct.pack("<QQQQ", toc_offset, len(packed), len(toc_json), 1) + GEN_A_MAGIC
        out.write_raw(struct.pack("<II", ZSTD_SKIPPABLE_MAGIC, len(footer)) + footer)
        annotations[LEGACY_ZSTD_CHECKSUM_ANNOTATION] = "sha256:" + hashlib.sha256(packed).hexdigest()
        annotations[LEGACY_ZSTD_POSITION_ANNOTATION] = f"{toc_offset}:{len(packed)}:{len(toc_json)}:1"
        fmt, media_type = LayerFormat.STARGZ_ZSTDCHUNKED, MEDIA_TYPE_ZSTD
    annotations[UNCOMPRESSED_SIZE_ANNOTATION] = str(out.raw_size)
    return EncodedLayer(
        format=fmt,
        media_type=media_type,
        digest=out.blob.digest(),
        size=out.offset,
        diff_id=out.raw.digest(),
        uncompressed_size=out.raw_size,
        annotations=annotations,
        toc_digest=toc_digest,
    )


__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "TOC_DIGEST_ANNOTATION",
    "UNCOMPRESSED_SIZE_ANNOTATION",
    "encode_estargz",
    "estargz_footer",
    "toc_json_bytes",
]
