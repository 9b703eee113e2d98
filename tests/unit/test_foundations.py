"""The shared vocabulary: ByteRange, paths, traces, records."""

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageformat.byterange import ByteRange, http_range_header, merge_ranges
from imageformat.toc import normalize_path
from startup.modes import PullMode
from startup.record import StartupRecord, percentile, read_csv, write_csv
from startup.trace import Op, Trace, TraceError, TraceOp


def test_byterange_http_form_is_inclusive():
    assert ByteRange(0, 10).to_http() == "0-9"
    assert http_range_header([ByteRange(5, 6), ByteRange(0, 2)]) == "bytes=5-5,0-1"
    with pytest.raises(ValueError, match="stop"):
        ByteRange(5, 4)


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 100)), max_size=30), st.integers(0, 50))
def test_merge_ranges_covers_exactly_the_union_plus_small_gaps(pairs, gap):
    ranges = [ByteRange(a, a + n) for a, n in pairs]
    merged = merge_ranges(ranges, max_gap=gap)
    covered = {i for r in ranges for i in range(r.start, r.stop)}
    merged_cover = {i for r in merged for i in range(r.start, r.stop)}
    assert covered <= merged_cover
    for a, b in itertools.pairwise(merged):
        assert b.start - a.stop > gap


@pytest.mark.parametrize(
    ("name", "path"), [("./etc/", "etc"), ("/usr/bin/x", "usr/bin/x"), ("./", "."), ("a//b/./c", "a/b/c")]
)
def test_normalize_path(name, path):
    assert normalize_path(name) == path


def test_normalize_path_rejects_escape():
    with pytest.raises(ValueError, match="escapes"):
        normalize_path("a/../../etc/passwd")


def test_trace_round_trip_and_errors(tmp_path):
    t = Trace.of([TraceOp(op=Op.READ, path="bin/sh", offset=0, length=10, think_s=0.5)], name="x")
    p = tmp_path / "t.jsonl"
    t.save(p)
    assert Trace.load(p) == t
    with pytest.raises(TraceError, match="unknown keys"):
        Trace.loads('{"op":"read","path":"a","bogus":1}')
    with pytest.raises(TraceError, match="length"):
        Trace.loads('{"op":"read","path":"a","length":-1}')


def test_record_csv_round_trip(tmp_path):
    r = StartupRecord(
        engine="sim", scenario="s", seed=1, node="n0", pod="p0", image="i", mode=PullMode.LAZY,
        submitted_s=0.0, pulled_s=1.0, created_s=1.5, ready_s=3.0, bytes_toc=10,
    )
    write_csv([r], tmp_path / "r.csv")
    (back,) = read_csv(tmp_path / "r.csv")
    assert back.time_to_ready_s == 3.0 and back.bytes_fetched == 10 and math.isnan(back.resolved_s)
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
