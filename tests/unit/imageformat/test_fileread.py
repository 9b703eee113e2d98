"""Reading files and byte ranges through a TOC: only the needed ranges, zero chunks never fetched."""

from __future__ import annotations

import tarfile

import pytest
from zc_support import fetcher, parse, vector

from imageformat.byterange import ByteRange
from imageformat.errors import TocError, TruncatedLayerError
from imageformat.fileread import plan_file_read, read_file
from imageformat.toc import ChunkKind


@pytest.fixture(scope="module")
def rich():  # type: ignore[no-untyped-def]
    v = vector("b/rich")
    blob = v.blob
    _, toc = parse(blob, v.annotations)
    with tarfile.open(v.source_path) as tf:
        sparse = tf.extractfile("var/sparse").read()  # type: ignore[union-attr]
        hello = tf.extractfile("etc/hello").read()  # type: ignore[union-attr]
    return blob, toc, sparse, hello


def test_zero_chunks_are_never_fetched(rich) -> None:  # type: ignore[no-untyped-def]
    blob, toc, sparse, _ = rich
    asked: list[ByteRange] = []

    def fetch(ranges):  # type: ignore[no-untyped-def]
        asked.extend(ranges)
        return [blob[r.start : r.stop] for r in ranges]

    assert read_file(toc, "var/sparse", fetch) == sparse
    entry = toc.entry("var/sparse")
    zero_ranges = {c.compressed for c in entry.chunks if c.kind is ChunkKind.ZEROS}
    assert zero_ranges and not zero_ranges & set(asked)
    assert len(asked) == sum(1 for c in entry.chunks if c.kind is not ChunkKind.ZEROS)


def test_every_range_of_a_multichunk_file(rich) -> None:  # type: ignore[no-untyped-def]
    blob, toc, sparse, _ = rich
    n = len(sparse)
    for start, stop in [(0, 1), (2014, 2016), (2900, 8100), (n - 1, n), (0, n), (5000, 5000), (3000, 8000)]:
        got = read_file(toc, "var/sparse", fetcher(blob), ByteRange(start, stop))
        assert got == sparse[start:stop]
    only_zero = plan_file_read(toc, "var/sparse", ByteRange(3100, 3200))
    assert [c.kind for c in only_zero] == [ChunkKind.ZEROS]
    assert read_file(
        toc, "var/sparse", lambda r: pytest.fail("nothing to fetch"), ByteRange(3100, 3200)
    ) == bytes(100)


def test_hardlink_reads_its_target_and_other_kinds_refuse(rich) -> None:  # type: ignore[no-untyped-def]
    blob, toc, _, hello = rich
    assert read_file(toc, "etc/hard-hello", fetcher(blob)) == hello
    with pytest.raises(TocError):
        read_file(toc, "etc/link-to-hello", fetcher(blob))
    with pytest.raises(TocError):
        read_file(toc, "dev", fetcher(blob))
    with pytest.raises(KeyError):
        read_file(toc, "missing", fetcher(blob))
    with pytest.raises(ValueError):
        plan_file_read(toc, "etc/hello", ByteRange(0, 100))
    assert read_file(toc, "etc/empty", lambda r: []) == b""


def test_short_fetch_is_an_error(rich) -> None:  # type: ignore[no-untyped-def]
    _, toc, _, _ = rich
    with pytest.raises(TruncatedLayerError):
        read_file(toc, "etc/hello", lambda ranges: [])
    with pytest.raises(TruncatedLayerError):
        read_file(toc, "etc/hello", lambda ranges: [b"x"])
