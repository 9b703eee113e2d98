"""RFC 9110 §14 range planning and the multipart/byteranges layout (registry.md §3.2, §6.1)."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageformat.byterange import ByteRange
from registry_mock.ranges import (
    RangeOutcome,
    count_range_specs,
    multipart_layout,
    plan_ranges,
)

P, U, F, T = RangeOutcome.PARTIAL, RangeOutcome.UNSATISFIABLE, RangeOutcome.FULL, RangeOutcome.TOO_MANY


@pytest.mark.parametrize(
    ("header", "size", "outcome", "ranges"),
    [
        ("bytes=0-9", 194, P, [(0, 10)]),
        ("bytes=500-", 2048, P, [(500, 2048)]),
        ("bytes=-500", 2048, P, [(1548, 2048)]),
        ("bytes=-5000", 2048, P, [(0, 2048)]),
        ("bytes=2000-5000", 2048, P, [(2000, 2048)]),
        ("bytes=500-1499", 2048, P, [(500, 1500)]),
        ("bytes=0-0", 1, P, [(0, 1)]),
        ("bytes= 0-1 , 5-6", 194, P, [(0, 2), (5, 7)]),
        ("BYTES=0-1", 194, P, [(0, 2)]),
        ("bytes=0-1,,5-6", 194, P, [(0, 2), (5, 7)]),
        ("bytes=9-3", 194, U, []),
        ("bytes=500-0", 2048, U, []),
        ("bytes=-0", 194, U, []),
        ("bytes=5000-", 2048, U, []),
        ("bytes=5000-10000", 2048, U, []),
        ("bytes=0-1,5000-6000", 2048, P, [(0, 2)]),
        ("items=0-1", 194, F, []),
        ("bytes=abc", 194, U, []),
        ("bytes=", 194, U, []),
        ("bytes=0-99,0-99,0-99", 194, F, []),  # overlapping total > size -> whole blob
        ("bytes=20-29,0-9", 194, P, [(20, 30), (0, 10)]),  # request order kept
        ("bytes=0-9,10-19", 194, P, [(0, 10), (10, 20)]),  # adjacent: never merged
        ("bytes=0-1", 0, F, []),  # empty blob -> 200
        ("bytes=" + "9" * 30 + "-", 194, U, []),  # absurd numbers
        ("nounit", 194, F, []),
    ],
)
def test_plan_table(header: str, size: int, outcome: RangeOutcome, ranges: list[tuple[int, int]]) -> None:
    plan = plan_ranges(header, size)
    assert plan.outcome is outcome
    assert [(r.start, r.stop) for r in plan.ranges] == ranges


def test_no_header_is_full() -> None:
    assert plan_ranges(None, 10).outcome is F


def test_cap_gives_too_many() -> None:
    header = "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(1025))
    assert plan_ranges(header, 1 << 20).outcome is T
    assert plan_ranges(header, 1 << 20, max_ranges=2048).outcome is P
    assert count_range_specs(header) == 1025


def test_if_range() -> None:
    etag = '"sha256:abc"'
    assert plan_ranges("bytes=0-1", 10, etag=etag, if_range=etag).outcome is P
    assert plan_ranges("bytes=0-1", 10, etag=etag, if_range='"sha256:other"').outcome is F
    assert plan_ranges("bytes=0-1", 10, etag=etag, if_range="Wed, 21 Oct 2015 07:28:00 GMT").outcome is F


def _parse_multipart(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    msg = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
    )
    out = []
    for p in msg.iter_parts():
        payload = p.get_payload(decode=True)
        assert isinstance(payload, bytes)
        out.append((str(p["Content-Range"]), payload))
    return out


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=3000),
    pairs=st.lists(st.tuples(st.integers(0, 2999), st.integers(1, 300)), min_size=2, max_size=12),
)
def test_multipart_layout_roundtrips(data: bytes, pairs: list[tuple[int, int]]) -> None:
    size = len(data)
    ranges = [ByteRange(min(s, size - 1), min(size, min(s, size - 1) + n)) for s, n in pairs]
    layout = multipart_layout(ranges, size, "application/octet-stream")
    body = b"".join(head + data[r.start : r.stop] for head, r in layout.parts) + layout.trailer
    assert len(body) == layout.content_length
    assert layout.boundary.isalnum()
    parts = _parse_multipart(body, layout.content_type)
    assert len(parts) == len(ranges)  # one part per range, in order, never merged
    for (cr, payload), r in zip(parts, ranges, strict=True):
        assert cr == f"bytes {r.start}-{r.stop - 1}/{size}"
        assert payload == data[r.start : r.stop]


@settings(max_examples=100, deadline=None)
@given(header=st.text(max_size=200), size=st.integers(0, 10_000))
def test_planner_never_crashes_and_stays_in_bounds(header: str, size: int) -> None:
    plan = plan_ranges(header, size)
    for r in plan.ranges:
        assert 0 <= r.start < r.stop <= size
