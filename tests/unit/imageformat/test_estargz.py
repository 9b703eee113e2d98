"""eStargz: byte layout (footer, members, TOC entry, landmarks) and round trips of generated trees."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imgtrees import layer_nodes, read_via_toc, sample_nodes, tar_bytes

from imageformat.byterange import ByteRange
from imageformat.estargz import encode_estargz, estargz_footer
from imageformat.estargz_toc import parse_estargz_footer, read_estargz_toc, read_stargz_zstd_toc
from imageformat.toc import Compression, EntryType, LayerFormat
from imageformat.tree import prioritize

LANDMARK_DIGEST = "sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8"


def encode(tar: bytes, **kw):  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    layer = encode_estargz(io.BytesIO(tar), out, **kw)
    return layer, out.getvalue()


def toc_of(layer, blob):  # type: ignore[no-untyped-def]
    reader = read_estargz_toc if layer.format is LayerFormat.ESTARGZ else read_stargz_zstd_toc
    return reader(lambda r: blob[r.start : r.stop], len(blob), layer.annotations)


def test_footer_bytes_match_the_spec_table():
    expected = bytes.fromhex(  # formats spec §3.2, example for offset 0x1234abcd
        "1f 8b 08 04 00 00 00 00 00 ff 1a 00 53 47 16 00 30 30 30 30 30 30 30 30 31 32 33 34 61 62 63 64"
        "53 54 41 52 47 5a 01 00 00 ff ff 00 00 00 00 00 00 00 00"
    )
    assert estargz_footer(0x1234ABCD) == expected
    assert len(expected) == 51
    assert gzip.decompress(expected) == b""
    assert parse_estargz_footer(b"junk" + expected) == (0x1234ABCD, 51)


def test_blob_layout_toc_member_and_annotations():
    tar = tar_bytes(sample_nodes())
    layer, blob = encode(tar, chunk_bytes=65536)
    raw = gzip.decompress(blob)  # Python's gzip reads the whole blob (all members + footer)
    assert layer.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert layer.annotations["io.containers.estargz.uncompressed-size"] == str(len(raw))
    members = tarfile.open(fileobj=io.BytesIO(raw)).getmembers()
    assert members[0].name == ".no.prefetch.landmark"  # no prioritize list
    assert members[-1].name == "stargz.index.json"
    toc_offset, _ = parse_estargz_footer(blob[-51:])
    # the TOC member alone decompresses to header + JSON + padding + end-of-archive
    d = zlib.decompressobj(31)
    toc_member = d.decompress(blob[toc_offset:-51])
    assert d.eof and not d.unused_data
    json_bytes = toc_member[512 : 512 + members[-1].size]
    assert toc_member.endswith(bytes(1024))
    assert layer.annotations["containerd.io/snapshot/stargz/toc.digest"] == (
        "sha256:" + hashlib.sha256(json_bytes).hexdigest()
    )
    assert json_bytes.startswith(b'{\n\t"version": 1,')
    jtoc = json.loads(json_bytes)
    for e in jtoc["entries"]:
        if e["type"] == "reg":
            assert "digest" in e
        if e["type"] == "chunk" or (e["type"] == "reg" and e.get("size")):
            assert e["chunkDigest"].startswith("sha256:")
    landmark = jtoc["entries"][0]
    assert landmark["digest"] == LANDMARK_DIGEST


def test_each_payload_chunk_starts_a_member():
    tar = tar_bytes(sample_nodes())
    layer, blob = encode(tar, chunk_bytes=65536)
    toc = toc_of(layer, blob)
    big = toc.entry("usr/bin/big")
    assert [c.size for c in big.chunks] == [65536] * 4 + [300_000 - 4 * 65536]
    for c in big.chunks:  # every compressed range is a self-contained gzip member sequence
        d = zlib.decompressobj(31)
        out = d.decompress(blob[c.compressed.start : c.compressed.stop])
        assert d.eof and out[: c.size]
    starts = sorted(c.compressed.start for e in toc.regular_files() for c in e.chunks)
    assert len(starts) == len(set(starts))


def test_prefetch_range_ends_before_the_landmark():
    src = io.BytesIO(tar_bytes(sample_nodes()))
    ordered = io.BytesIO()
    prioritize(src, ordered, ["usr/bin/text", "usr/bin/hard"])
    layer, blob = encode(ordered.getvalue(), chunk_bytes=65536)
    toc = toc_of(layer, blob)
    names = [e.path for e in toc.entries]
    assert names[:6] == [
        "usr",
        "usr/bin",
        "usr/bin/text",
        "usr/bin/big",
        "usr/bin/hard",
        ".prefetch.landmark",
    ]
    landmark = toc.entry(".prefetch.landmark")
    assert toc.prefetch == ByteRange(0, landmark.chunks[0].compressed.start)
    assert not toc.no_prefetch
    for path in ("usr/bin/text", "usr/bin/big"):
        for c in toc.entry(path).chunks:
            assert c.compressed.stop <= toc.prefetch.stop


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
def test_sample_round_trip_and_metadata(compression):
    nodes = sample_nodes()
    layer, blob = encode(tar_bytes(nodes), chunk_bytes=50_000, compression=compression)
    toc = toc_of(layer, blob)
    assert toc.compression is compression
    assert toc.no_prefetch
    big = toc.entry("usr/bin/big")
    assert (big.mode, big.uid, big.gid, dict(big.xattrs)) == (0o755, 1000, 1001, {"user.test": b"yes"})
    assert toc.entry("usr/bin/hard").type is EntryType.HARDLINK
    assert toc.entry("usr/bin/hard").link_name == "usr/bin/big"
    assert toc.entry("dev-null").dev_major == 1 and toc.entry("dev-null").dev_minor == 3
    assert toc.entry("pipe").type is EntryType.FIFO
    for n in nodes:
        if n.kind == "reg":
            assert read_via_toc(toc, n.path, blob) == n.data


def _check_round_trip(nodes, blob, layer) -> None:  # type: ignore[no-untyped-def]
    toc = toc_of(layer, blob)
    last = {n.path: n for n in nodes}
    for path, n in last.items():
        e = toc.entry(path)
        assert e.type.value == n.kind
        if n.kind == "reg":
            assert e.size == len(n.data)
            assert e.mode == n.mode and e.uid == n.uid and e.gid == n.gid
            assert e.mtime_ns == n.mtime * 10**9
            assert dict(e.xattrs) == n.xattrs
            assert sum(c.size for c in e.chunks) == len(n.data)  # chunks tile the file
            pos = 0
            for c in e.chunks:
                assert c.file_offset == pos
                pos += c.size
            assert read_via_toc(toc, path, blob) == n.data
        if n.kind in ("symlink", "hardlink"):
            assert e.link_name == n.link


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(nodes=layer_nodes(), chunk_bytes=st.sampled_from([1024, 65536, 4 << 20]), data=st.data())
def test_generated_trees_round_trip_and_any_range_decodes(nodes, chunk_bytes, data):
    layer, blob = encode(tar_bytes(nodes), chunk_bytes=chunk_bytes, level=1)
    assert gzip.decompress(blob)  # valid tar+gzip as a whole
    _check_round_trip(nodes, blob, layer)
    toc = toc_of(layer, blob)
    files = [n for n in {n.path: n for n in nodes}.values() if n.kind == "reg" and n.data]
    if files:
        n = data.draw(st.sampled_from(files))
        start = data.draw(st.integers(0, len(n.data) - 1))
        stop = data.draw(st.integers(start, len(n.data)))
        assert read_via_toc(toc, n.path, blob, ByteRange(start, stop)) == n.data[start:stop]


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(nodes=layer_nodes())
def test_generated_trees_round_trip_stargz_zstd_variant(nodes):
    layer, blob = encode(tar_bytes(nodes), chunk_bytes=4096, compression=Compression.ZSTD, level=1)
    assert layer.format is LayerFormat.STARGZ_ZSTDCHUNKED
    _check_round_trip(nodes, blob, layer)


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
def test_min_chunk_size_packs_payloads_with_inner_offsets(compression):
    nodes = sample_nodes()
    layer, blob = encode(
        tar_bytes(nodes), chunk_bytes=65536, min_chunk_bytes=200_000, compression=compression
    )
    toc = toc_of(layer, blob)
    chunks = [c for e in toc.regular_files() for c in e.chunks]
    shared = [c for c in chunks if c.inner_offset]
    assert shared and len({c.compressed.start for c in chunks}) < len(chunks)
    assert toc.entry(".no.prefetch.landmark").chunks[0].inner_offset == 0  # landmarks start a member
    for n in nodes:
        if n.kind == "reg":
            assert read_via_toc(toc, n.path, blob) == n.data
    if compression is Compression.GZIP:
        assert layer.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()
