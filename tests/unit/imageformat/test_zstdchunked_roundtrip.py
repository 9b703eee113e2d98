"""Any generated tree: tar -> zstd:chunked (both generations) -> TOC -> every byte of every file."""

from __future__ import annotations

import io
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imgtrees import layer_nodes, tar_bytes
from zc_support import decompress_stream, fetcher, parse

from imageformat.byterange import ByteRange
from imageformat.chunker import find_chunks
from imageformat.fileread import read_file
from imageformat.tarsplit import reassemble_tar
from imageformat.toc import EntryType
from imageformat.zstdchunked import encode_zstd_chunked
from imageformat.zstdchunked_toc import load_tar_split


def _contents(tar: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for m in tf.getmembers():
            if m.isreg():
                out[m.name] = tf.extractfile(m).read()  # type: ignore[union-attr]
    return out


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(layer_nodes(), st.sampled_from(["a", "b"]), st.randoms(use_true_random=False))
def test_round_trip(nodes, gen, rnd) -> None:  # type: ignore[no-untyped-def]
    tar = tar_bytes(nodes)
    out = io.BytesIO()
    layer = encode_zstd_chunked(io.BytesIO(tar), out, generation=gen, level=1)
    blob = out.getvalue()
    assert decompress_stream(blob) == tar
    loc, toc = parse(blob, dict(layer.annotations))
    _, sniffed = parse(blob, None)
    assert sniffed.entries == toc.entries
    files = _contents(tar)
    for e in toc.entries:
        if e.type is not EntryType.REG:
            continue
        data = files[e.name]
        assert e.size == len(data)
        # the chunks tile the file exactly and are the chunker's
        assert [(c.file_offset, c.size) for c in e.chunks] == [(s.offset, s.size) for s in find_chunks(data)]
        assert read_file(toc, e.path, fetcher(blob)) == data
        if data:
            a = rnd.randrange(len(data))
            b = rnd.randrange(a, len(data) + 1)
            assert read_file(toc, e.path, fetcher(blob), ByteRange(a, b)) == data[a:b]
    if gen == "b":
        assert loc.tar_split is not None
        records = load_tar_split(toc, blob[loc.tar_split.start : loc.tar_split.stop])
        rebuilt = io.BytesIO()
        by_name = {e.name: e for e in toc.entries}
        reassemble_tar(records, lambda r: read_file(toc, by_name[r.name].path, fetcher(blob)), rebuilt)
        assert rebuilt.getvalue() == tar


def test_multi_megabyte_file_with_holes_and_trailing_bytes() -> None:
    import numpy as np
    from imgtrees import Node

    rng = np.random.default_rng(3)
    big = rng.bytes(3 << 20) + bytes(70_000) + b"lazy " * 200_000 + bytes(1024) + rng.bytes(10)
    tar = tar_bytes([Node("big", "reg", data=big), Node("small", "reg", data=b"x")])
    tar += bytes(7000)  # bytes after the end-of-archive marker survive both generations
    for gen in ("a", "b"):
        out = io.BytesIO()
        layer = encode_zstd_chunked(io.BytesIO(tar), out, generation=gen, level=1)
        blob = out.getvalue()
        assert decompress_stream(blob) == tar
        _, toc = parse(blob, dict(layer.annotations))
        entry = toc.entry("big")
        assert len(entry.chunks) > 20 and sum(c.kind == "zeros" for c in entry.chunks) == 2
        assert read_file(toc, "big", fetcher(blob)) == big
        assert (
            read_file(toc, "big", fetcher(blob), ByteRange(3 << 20, (3 << 20) + 80_000))
            == big[3 << 20 :][:80_000]
        )


def test_encoder_refuses_what_containers_storage_refuses() -> None:
    import pytest
    from imgtrees import Node

    from imageformat.errors import DuplicateEntryError, UnsafePathError, UnsupportedEntryError

    dup = tar_bytes([Node("a", "reg", data=b"1"), Node("./a", "reg", data=b"2")])
    encode_zstd_chunked(io.BytesIO(dup), io.BytesIO(), generation="a")  # the old writer allowed it
    with pytest.raises(DuplicateEntryError):
        encode_zstd_chunked(io.BytesIO(dup), io.BytesIO(), generation="b")
    with pytest.raises(UnsafePathError):
        encode_zstd_chunked(io.BytesIO(tar_bytes([Node("../x", "reg", data=b"1")])), io.BytesIO())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "x"}) as tf:
        tf.addfile(tarfile.TarInfo("d"))
    with pytest.raises(UnsupportedEntryError):
        encode_zstd_chunked(io.BytesIO(buf.getvalue()), io.BytesIO())


def test_landmarks_give_prefetch_range_or_no_prefetch() -> None:
    from imgtrees import Node

    landmark = Node(".prefetch.landmark", "reg", data=b"\x0f")
    tar = tar_bytes([Node("first", "reg", data=b"a" * 5000), landmark, Node("later", "reg", data=b"b" * 100)])
    out = io.BytesIO()
    layer = encode_zstd_chunked(io.BytesIO(tar), out, level=1)
    _, toc = parse(out.getvalue(), dict(layer.annotations))
    mark = toc.entry(".prefetch.landmark").chunks[0].compressed
    assert toc.prefetch == ByteRange(0, mark.start) and not toc.no_prefetch
    assert toc.entry("first").chunks[0].compressed.stop <= mark.start
    tar = tar_bytes([Node(".no.prefetch.landmark", "reg", data=b"\x0f"), Node("x", "reg", data=b"x")])
    out = io.BytesIO()
    layer = encode_zstd_chunked(io.BytesIO(tar), out, generation="a", level=1)
    _, toc = parse(out.getvalue(), dict(layer.annotations))
    assert toc.no_prefetch and toc.prefetch is None
