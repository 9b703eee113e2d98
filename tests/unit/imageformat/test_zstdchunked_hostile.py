"""Broken zstd:chunked blobs: each failure class raises its own error, never a hang or wrong bytes."""

from __future__ import annotations

import json
import struct

import pytest
import zstandard
from zc_support import fetcher, locate, parse, replace_toc, vector

from imageformat.errors import (
    ContentDigestError,
    DecompressionBombError,
    FooterError,
    TocDigestError,
    TocError,
    TocTooLargeError,
    TruncatedLayerError,
)
from imageformat.fileread import read_file
from imageformat.layer import ChunkDecodeError
from imageformat.zstdchunked_toc import load_tar_split, locate_zstd_chunked_toc, parse_zstd_chunked_toc


def test_truncated_blob() -> None:
    v = vector("b/example")
    blob = v.blob
    with pytest.raises(TruncatedLayerError):
        locate_zstd_chunked_toc(v.annotations, len(blob) - 100, None)
    with pytest.raises(FooterError):  # the footer is gone: nothing to sniff
        locate(blob[:-100], None)


def test_bad_footer_magic() -> None:
    blob = bytearray(vector("a/edge").blob)
    blob[-1] ^= 0xFF
    with pytest.raises(FooterError):
        locate(bytes(blob), None)


def test_footer_disagreeing_with_annotations() -> None:
    v = vector("b/rich")
    ann = dict(v.annotations)
    key = "io.github.containers.zstd-chunked.manifest-position"
    off, clen, ulen, t = ann[key].split(":")
    ann[key] = f"{int(off) - 1}:{clen}:{ulen}:{t}"
    with pytest.raises(FooterError, match="disagrees"):
        locate(v.blob, ann)


def test_toc_digest_mismatch() -> None:
    v = vector("a/example")
    blob, ann = v.blob, dict(v.annotations)
    ann["io.containers.zstd-chunked.manifest-checksum"] = "sha256:" + "1" * 64
    loc = locate(blob, ann)
    with pytest.raises(TocDigestError):
        parse_zstd_chunked_toc(loc, blob[loc.toc.start : loc.toc.stop])


def test_declared_toc_over_150_mib_refused_before_fetching() -> None:
    v = vector("a/edge")
    ann = dict(v.annotations)
    key = "io.containers.zstd-chunked.manifest-position"
    off, clen, _, t = ann[key].split(":")
    ann[key] = f"{off}:{clen}:{151 << 20}:{t}"
    with pytest.raises(TocTooLargeError):
        locate_zstd_chunked_toc(ann, len(v.blob))


def test_decompression_bomb_is_capped() -> None:
    v = vector("a/edge")
    bomb = json.dumps({"version": 1, "entries": [], "pad": "x" * (20 << 20)}).encode()
    blob, ann = replace_toc(v.blob, v.annotations, bomb, declared=1000)
    loc = locate(blob, ann)
    with pytest.raises(DecompressionBombError):
        parse_zstd_chunked_toc(loc, blob[loc.toc.start : loc.toc.stop])


def test_toc_shorter_than_declared_and_not_zstd() -> None:
    v = vector("a/edge")
    blob, ann = replace_toc(v.blob, v.annotations, b'{"version":1,"entries":[]}', declared=99)
    with pytest.raises(TocError, match="declared"):
        parse(blob, ann)
    raw = bytearray(v.blob)
    loc = locate(bytes(raw), v.annotations)
    raw[loc.toc.start + 20] ^= 0xFF
    loc2 = locate(bytes(raw), None)  # no digest to check: zstd itself must notice
    with pytest.raises(TocError):
        parse_zstd_chunked_toc(loc2, bytes(raw[loc2.toc.start : loc2.toc.stop]))


def test_malformed_json_and_trailing_garbage() -> None:
    v = vector("a/edge")
    for doc in (b"{not json", b'{"version":1,"entries":[]} trailing', b"[]", b'{"version":2,"entries":[]}'):
        blob, ann = replace_toc(v.blob, v.annotations, doc)
        with pytest.raises(TocError):
            parse(blob, ann)


def test_corrupted_data_frame_never_yields_wrong_bytes() -> None:
    v = vector("a/example")
    blob = bytearray(v.blob)
    _, toc = parse(bytes(blob), v.annotations)
    entry = toc.entry("etc/nums")
    c = entry.chunks[0]
    blob[c.compressed.start + 100] ^= 0x55
    with pytest.raises((ChunkDecodeError, ContentDigestError)):
        read_file(toc, "etc/nums", fetcher(bytes(blob)))


def test_tar_split_tampering() -> None:
    v = vector("b/rich")
    blob = v.blob
    loc, toc = parse(blob, v.annotations)
    assert loc.tar_split is not None
    ts = bytearray(blob[loc.tar_split.start : loc.tar_split.stop])
    ts[30] ^= 1
    with pytest.raises(TocDigestError):
        load_tar_split(toc, bytes(ts))
    # an authentic-looking tar-split that names other entries is refused
    lines = zstandard.ZstdDecompressor().decompress(
        bytes(blob[loc.tar_split.start : loc.tar_split.stop]), max_output_size=1 << 22
    )
    evil = zstandard.ZstdCompressor().compress(lines.replace(b'"name":"etc/hello"', b'"name":"etc/hellx"'))
    import dataclasses
    import hashlib

    toc2 = dataclasses.replace(toc, tar_split_digest="sha256:" + hashlib.sha256(evil).hexdigest())
    with pytest.raises(TocError, match="same entries"):
        load_tar_split(toc2, evil)


def test_56_byte_footer_is_sniffed() -> None:
    v = vector("a/edge")
    blob = v.blob
    loc = locate(blob, v.annotations)
    footer = (
        struct.pack("<4Q", loc.toc.start, len(loc.toc), loc.toc_uncompressed_size, 1)
        + b"GnUlInUx"
        + bytes(16)
    )
    blob56 = blob[:-48] + b"\x50\x2a\x4d\x18" + struct.pack("<I", 56) + footer
    loc56 = locate(blob56, None)
    assert loc56.footer_size == 56 and loc56.toc == loc.toc
    toc = parse_zstd_chunked_toc(loc56, blob56[loc56.toc.start : loc56.toc.stop], blob_size=len(blob56))
    assert [e.path for e in toc.entries] == ["split-at-eof", "split-before-hole"]


@pytest.mark.parametrize(
    "change",
    [
        {"mode": 0o700},
        {"uid": 5},
        {"link_name": "elsewhere"},
        {"mtime_ns": 1},
        {"xattrs": {"user.x": b"1"}},
    ],
)
def test_toc_metadata_that_disagrees_with_the_tar_split_headers(change: dict) -> None:  # type: ignore[type-arg]
    import dataclasses

    v = vector("b/rich")
    blob = v.blob
    loc, toc = parse(blob, v.annotations)
    assert loc.tar_split is not None
    ts = blob[loc.tar_split.start : loc.tar_split.stop]
    load_tar_split(toc, ts)  # the authentic pair agrees
    k = next(i for i, e in enumerate(toc.entries) if e.name == "etc/link-to-hello")
    entries = list(toc.entries)
    entries[k] = dataclasses.replace(entries[k], **change)
    with pytest.raises(TocError, match="disagrees"):
        load_tar_split(dataclasses.replace(toc, entries=tuple(entries)), ts)


def test_chunk_decoding_holds_to_the_cap_for_one_frame_many_frames_and_broken_frames() -> None:
    from imageformat.layer import _decode_zstd

    c = zstandard.ZstdCompressor(level=3)
    one, two = c.compress(b"a" * 100), c.compress(b"b" * 50)
    assert _decode_zstd(one, 100) == b"a" * 100  # one frame with its size: the one-call path
    assert _decode_zstd(one + two, 150) == b"a" * 100 + b"b" * 50  # more frames: all of them
    assert _decode_zstd(one, 10) == b"a" * 11  # never more than the cap + 1, whatever the frame declares
    assert _decode_zstd(one[:-3], 100) != b"a" * 100  # truncated: short (decode_chunk's length check)
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"c" * (1 << 20))
    assert len(_decode_zstd(unsized, 1000)) == 1001  # a frame without a declared size: still capped
    checked = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(bytes(range(256)) * 4))
    checked[-2] ^= 0xFF  # the frame's checksum no longer matches
    with pytest.raises(ChunkDecodeError):
        _decode_zstd(bytes(checked), 1024)
