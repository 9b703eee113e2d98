"""Golden zstd:chunked layers (../shared/testdata): decode them exactly, and re-encode their tars exactly."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile

import pytest
import zstandard
from zc_support import VECTOR_NAMES, decompress_stream, fetcher, locate, parse, vector

from imageformat.fileread import read_file
from imageformat.tarsplit import reassemble_tar
from imageformat.toc import ChunkKind, EntryType, LayerFormat
from imageformat.zstdchunked import encode_zstd_chunked
from imageformat.zstdchunked_toc import decode_toc_json, load_tar_split
from tests.helpers import require_tool


@pytest.mark.parametrize("name", VECTOR_NAMES)
@pytest.mark.parametrize("with_annotations", [True, False])
def test_golden_toc_decodes_byte_for_byte(name: str, with_annotations: bool) -> None:
    v = vector(name)
    blob, ann = v.blob, v.annotations
    loc = locate(blob, ann if with_annotations else None)
    assert loc.footer_size == (40 if v.gen == "a" else 64)
    pos = next(val for k, val in ann.items() if k.endswith("manifest-position"))
    assert f"{loc.toc.start}:{len(loc.toc)}:{loc.toc_uncompressed_size}:1" == pos
    if with_annotations:
        assert loc.toc_digest == next(val for k, val in ann.items() if k.endswith("manifest-checksum"))
    digest = next(val for k, val in ann.items() if k.endswith("manifest-checksum"))
    raw = decode_toc_json(loc, blob[loc.toc.start : loc.toc.stop], expected_digest=digest)
    assert raw == v.toc_json


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_golden_files_decode_through_toc_ranges(name: str) -> None:
    v = vector(name)
    blob = v.blob
    _, toc = parse(blob, v.annotations)
    assert toc.format is (LayerFormat.ZSTD_CHUNKED if v.gen == "b" else LayerFormat.ZSTD_CHUNKED_LEGACY)
    gold = json.loads(v.toc_json)["entries"]
    assert toc.chunk_count == sum(1 for e in gold if e["type"] == "chunk") + sum(
        1 for e in gold if e["type"] == "reg" and e.get("size")
    )
    with tarfile.open(v.source_path) as tf:
        for e in toc.entries:
            if e.type is not EntryType.REG:
                continue
            member = tf.getmember(e.name.rstrip("/"))
            expected = tf.extractfile(member).read()  # type: ignore[union-attr]
            assert read_file(toc, e.path, fetcher(blob)) == expected
            for c in e.chunks:
                if c.kind is ChunkKind.ZEROS:
                    assert expected[c.file_offset : c.file_offset + c.size] == bytes(c.size)
    # the whole blob through a plain zstd reader: the tar (gen a drops the trailing record padding)
    stream = decompress_stream(blob)
    src = v.source
    if v.gen == "b":
        assert stream == src
    else:
        assert src.startswith(stream) and not src[len(stream) :].strip(b"\0")


@pytest.mark.parametrize("name", [n for n in VECTOR_NAMES if n.startswith("b/")])
def test_golden_tar_split_reassembles_source(name: str) -> None:
    v = vector(name)
    blob = v.blob
    loc, toc = parse(blob, v.annotations)
    assert loc.tar_split is not None
    records = load_tar_split(
        toc, blob[loc.tar_split.start : loc.tar_split.stop], uncompressed_size=loc.tar_split_uncompressed_size
    )
    by_name = {e.name: e for e in toc.entries}
    out = io.BytesIO()
    reassemble_tar(records, lambda r: read_file(toc, by_name[r.name].path, fetcher(blob)), out)
    assert out.getvalue() == v.source


def _strip(entries: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [{k: val for k, val in e.items() if k not in ("offset", "endOffset")} for e in entries]


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_encoder_reproduces_golden_toc_and_tar_split(name: str) -> None:
    v = vector(name)
    out = io.BytesIO()
    with open(v.source_path, "rb") as f:
        layer = encode_zstd_chunked(f, out, generation=v.gen)  # type: ignore[arg-type]
    blob = out.getvalue()
    src = v.source
    assert layer.diff_id == "sha256:" + hashlib.sha256(src).hexdigest()
    assert layer.size == len(blob) and layer.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert set(layer.annotations) == set(v.annotations)
    loc, _toc = parse(blob, dict(layer.annotations))
    mine = json.loads(decode_toc_json(loc, blob[loc.toc.start : loc.toc.stop]))
    gold = json.loads(v.toc_json)
    # same entries, keys in the same order, same chunk boundaries and digests; offsets differ
    assert _strip(mine["entries"]) == _strip(gold["entries"])
    assert [list(e) for e in mine["entries"]] == [list(e) for e in gold["entries"]]
    assert list(mine) == list(gold)
    assert decompress_stream(blob) == src  # both generations keep the trailing bytes
    if v.gen == "b":
        gblob = v.blob
        gloc, _ = parse(gblob, v.annotations)
        assert gloc.tar_split is not None and loc.tar_split is not None
        d = zstandard.ZstdDecompressor()
        ours = d.decompress(blob[loc.tar_split.start : loc.tar_split.stop], max_output_size=1 << 24)
        theirs = d.decompress(gblob[gloc.tar_split.start : gloc.tar_split.stop], max_output_size=1 << 24)
        assert ours == theirs


@pytest.mark.parametrize("gen", ["a", "b"])
def test_zstd_cli_decompresses_our_blob(gen: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    zstd = require_tool("zstd")
    v = vector("a/rich")
    blob_path = tmp_path / "layer.zst"
    with open(v.source_path, "rb") as f, open(blob_path, "wb") as o:
        encode_zstd_chunked(f, o, generation=gen)  # type: ignore[arg-type]
    out = subprocess.run([zstd, "-d", "-c", str(blob_path)], check=True, capture_output=True).stdout
    assert out == v.source
