"""Plain gzip/zstd layers: round trips, multi-member/frame streams, truncation, garbage, bomb cap."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from imageformat.errors import DecompressionBombError, FormatError, TruncatedLayerError
from imageformat.layer import MEDIA_TYPE_GZIP, MEDIA_TYPE_ZSTD
from imageformat.plain import (
    CorruptStreamError,
    DecompressedReader,
    decompress_to,
    encode_gzip,
    encode_zstd,
    iter_decompressed,
)
from imageformat.toc import Compression, LayerFormat

CODECS = [(encode_gzip, Compression.GZIP, MEDIA_TYPE_GZIP), (encode_zstd, Compression.ZSTD, MEDIA_TYPE_ZSTD)]


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=200_000), which=st.sampled_from([0, 1]))
def test_round_trip_and_digests(data, which):
    enc, comp, media = CODECS[which]
    out = io.BytesIO()
    layer = enc(io.BytesIO(data), out)
    blob = out.getvalue()
    assert layer.media_type == media and layer.format is LayerFormat(comp.value)
    assert layer.digest == "sha256:" + hashlib.sha256(blob).hexdigest() and layer.size == len(blob)
    assert layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert b"".join(iter_decompressed(comp, io.BytesIO(blob))) == data


def test_standard_tools_read_our_blobs():
    data = b"layer " * 100_000
    g, z = io.BytesIO(), io.BytesIO()
    encode_gzip(io.BytesIO(data), g)
    encode_zstd(io.BytesIO(data), z)
    assert gzip.decompress(g.getvalue()) == data
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(z.getvalue())).read() == data


def test_concatenated_members_frames_and_skippable_frames():
    a, b = b"first part ", b"second part"
    gz = gzip.compress(a) + gzip.compress(b)
    assert b"".join(iter_decompressed(Compression.GZIP, io.BytesIO(gz))) == a + b
    c = zstandard.ZstdCompressor()
    skippable = struct.pack("<II", 0x184D2A50, 4) + b"toc!"
    zs = c.compress(a) + skippable + c.compress(b) + skippable
    assert b"".join(iter_decompressed(Compression.ZSTD, io.BytesIO(zs))) == a + b


@pytest.mark.parametrize("which", [0, 1])
def test_truncated_and_garbage_streams(which):
    enc, comp, _ = CODECS[which]
    out = io.BytesIO()
    enc(io.BytesIO(b"x" * 100_000 + bytes(range(256)) * 100), out)
    blob = out.getvalue()
    with pytest.raises(TruncatedLayerError):
        list(iter_decompressed(comp, io.BytesIO(blob[:-3])))
    with pytest.raises(CorruptStreamError):
        list(iter_decompressed(comp, io.BytesIO(blob + b"garbage!")))
    with pytest.raises(FormatError):
        list(iter_decompressed(comp, io.BytesIO(b"\x00" * 64)))


@pytest.mark.parametrize("which", [0, 1])
def test_decompression_bomb_is_capped(which):
    enc, comp, _ = CODECS[which]
    out = io.BytesIO()
    enc(io.BytesIO(bytes(50 << 20)), out)  # 50 MiB of zeros -> a few KB
    assert out.tell() < 200_000
    with pytest.raises(DecompressionBombError):
        decompress_to(comp, io.BytesIO(out.getvalue()), io.BytesIO(), max_bytes=1 << 20)


def test_decompressed_reader_hashes_what_it_hands_out():
    out = io.BytesIO()
    layer = encode_zstd(io.BytesIO(b"abc" * 1000), out)
    reader = DecompressedReader(Compression.ZSTD, io.BytesIO(out.getvalue()))
    assert reader.read(10) == b"abcabcabca"
    reader.drain()
    assert reader.digest() == layer.diff_id and reader.size == 3000
