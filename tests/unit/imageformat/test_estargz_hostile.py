"""eStargz decoder against broken and lying blobs: a specific exception each, never wrong bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest
from imgtrees import read_via_toc, sample_nodes, tar_bytes

from imageformat.errors import (
    DecompressionBombError,
    DuplicateEntryError,
    FooterError,
    FormatError,
    TocDigestError,
    TocError,
    TocTooLargeError,
    TruncatedLayerError,
    UnsafePathError,
)
from imageformat.estargz import encode_estargz, estargz_footer
from imageformat.estargz_toc import parse_estargz_footer, read_estargz_toc

ANN = "containerd.io/snapshot/stargz/toc.digest"


@pytest.fixture(scope="module")
def good() -> tuple[bytes, dict, dict]:
    out = io.BytesIO()
    layer = encode_estargz(io.BytesIO(tar_bytes(sample_nodes())), out, chunk_bytes=65536)
    blob = out.getvalue()
    toc_offset, _ = parse_estargz_footer(blob[-51:])
    member = gzip.decompress(blob[toc_offset:-51])
    size = tarfile.TarInfo.frombuf(member[:512], "utf-8", "strict").size
    return blob, dict(layer.annotations), json.loads(member[512 : 512 + size])


def read(blob: bytes, annotations: dict):  # type: ignore[no-untyped-def]
    return read_estargz_toc(lambda r: blob[r.start : r.stop], len(blob), annotations)


def forge(blob: bytes, jtoc: dict | bytes, *, declared_size: int | None = None) -> tuple[bytes, dict]:
    """Replace the TOC with `jtoc`, re-authenticated, so only the parser's checks stand in the way."""
    toc_offset, _ = parse_estargz_footer(blob[-51:])
    body = jtoc if isinstance(jtoc, bytes) else json.dumps(jtoc, indent="\t").encode()
    ti = tarfile.TarInfo("stargz.index.json")
    ti.size = len(body) if declared_size is None else declared_size
    raw = ti.tobuf(tarfile.USTAR_FORMAT) + body + bytes(-len(body) % 512) + bytes(1024)
    new = blob[:toc_offset] + gzip.compress(raw, mtime=0) + estargz_footer(toc_offset)
    return new, {ANN: "sha256:" + hashlib.sha256(body).hexdigest()}


def test_good_blob_parses(good):
    blob, ann, _ = good
    assert read(blob, ann).entry("etc/hello").size == 3


@pytest.mark.parametrize("cut", [1, 30, 51, 200, 5000])
def test_truncated_blobs(good, cut):
    blob, ann, _ = good
    with pytest.raises((TruncatedLayerError, FooterError, TocError)):
        read(blob[:-cut], ann)


def test_bad_footer_and_offset_past_end(good):
    blob, ann, _ = good
    bad = bytearray(blob)
    bad[-10] ^= 0xFF
    with pytest.raises(FooterError):
        read(bytes(bad), ann)
    with pytest.raises(FooterError):
        read(blob[:-51] + estargz_footer(len(blob) * 2), ann)


def test_toc_digest_mismatch(good):
    blob, _, _ = good
    with pytest.raises(TocDigestError):
        read(blob, {ANN: "sha256:" + "0" * 64})


def _edit(jtoc: dict, target: str, **changes) -> dict:  # type: ignore[no-untyped-def]
    out = json.loads(json.dumps(jtoc))
    for e in out["entries"]:
        if e["name"] == target and e["type"] == "reg":
            e.update(changes)
    return out


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"offset": 10**12}, TocError),  # past the end
        ({"size": -1}, TocError),
        ({"chunkSize": 7}, TocError),
        ({"offset": "12"}, TocError),
        ({"name": "../../etc/passwd"}, UnsafePathError),
    ],
)
def test_lying_entries(good, change, error):
    blob, _, jtoc = good
    forged, ann = forge(blob, _edit(jtoc, "etc/hello", **change))
    with pytest.raises(error):
        read(forged, ann)


def test_overlapping_pieces_rejected(good):
    blob, _, jtoc = good
    big_offset = next(e["offset"] for e in jtoc["entries"] if e["name"] == "usr/bin/text")
    forged, ann = forge(blob, _edit(jtoc, "etc/hello", offset=big_offset))
    with pytest.raises(TocError):
        read(forged, ann)


def test_hardlink_escape_and_bad_json(good):
    blob, _, jtoc = good
    j = json.loads(json.dumps(jtoc))
    for e in j["entries"]:
        if e["type"] == "hardlink":
            e["linkName"] = "../outside"
    forged, ann = forge(blob, j)
    with pytest.raises(UnsafePathError):
        read(forged, ann)
    for body in (
        b"{not json",
        b"[]",
        b'{"version": 2, "entries": []}',
        b'{"version":1,"entries":[1]}',
        b'{"version":1,"entries":[{"name":"x","type":"socket"}]}',
    ):
        forged, ann = forge(blob, body)
        with pytest.raises(TocError):
            read(forged, ann)


def test_duplicate_entries_and_absurd_counts(good, monkeypatch):
    blob, _, jtoc = good
    j = json.loads(json.dumps(jtoc))
    j["entries"].append(next(e for e in j["entries"] if e["type"] == "dir"))
    forged, ann = forge(blob, j)
    with pytest.raises(DuplicateEntryError):
        read(forged, ann)
    import imageformat.estargz_toc as mod

    monkeypatch.setattr(mod, "MAX_ENTRIES", 5)
    with pytest.raises(TocTooLargeError):
        read(blob, {})


def test_toc_over_150_mib_refused(good):
    blob, _, jtoc = good
    forged, ann = forge(blob, jtoc, declared_size=151 << 20)
    with pytest.raises(TocTooLargeError):
        read(forged, ann)


def test_toc_member_bomb_capped(good):
    blob, _, _ = good
    toc_offset, _ = parse_estargz_footer(blob[-51:])
    bomb = gzip.compress(bytes(200 << 20), compresslevel=1)  # 200 MiB of zeros in ~200 KB
    forged = blob[:toc_offset] + bomb + estargz_footer(toc_offset)
    with pytest.raises((DecompressionBombError, TocError)):
        read(forged, {})


@pytest.mark.parametrize("change", [{"chunkDigest": "sha256:" + "1" * 64}, {"size": 4}, {"size": 2}])
def test_lying_sizes_and_digests_never_return_wrong_bytes(good, change):
    blob, _, jtoc = good
    forged, ann = forge(blob, _edit(jtoc, "etc/hello", **change))
    try:
        toc = read(forged, ann)
    except TocError:
        return  # refused up front: fine
    with pytest.raises((FormatError, ValueError)):
        read_via_toc(toc, "etc/hello", forged)
