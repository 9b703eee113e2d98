"""Pure parts of the emulator's HTTP edge: references, Content-Range, multipart bodies, request plans."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.errors import BadReferenceError, RangeProtocolError
from emulator.ranges import (
    RangePolicy,
    parse_content_range,
    parse_multipart_byteranges,
    plan_requests,
)
from emulator.reference import parse_reference
from imageformat.byterange import ByteRange


def test_parse_reference_forms() -> None:
    r = parse_reference("127.0.0.1:5000/lab/app:v1")
    assert (r.host, r.repository, r.tag, r.digest, r.is_loopback) == (
        "127.0.0.1:5000",
        "lab/app",
        "v1",
        None,
        True,
    )
    d = "sha256:" + "a" * 64
    r = parse_reference(f"localhost:5000/app@{d}")
    assert r.digest == d and r.reference == d and r.tag is None
    assert parse_reference("registry.example:443/x").tag == "latest"
    assert not parse_reference("registry.example/x:1").is_loopback
    assert str(parse_reference("127.0.0.1:1/a/b:c")) == "127.0.0.1:1/a/b:c"


@pytest.mark.parametrize(
    "bad",
    ["app:v1", "127.0.0.1:5000/App:v1", "127.0.0.1:5000/app@sha256:xyz", "127.0.0.1:5000/app:bad tag", ""],
)
def test_parse_reference_rejects(bad: str) -> None:
    with pytest.raises(BadReferenceError):
        parse_reference(bad)


def test_content_range() -> None:
    assert parse_content_range("bytes 0-9/194") == (ByteRange(0, 10), 194)
    assert parse_content_range("bytes 5-5/*") == (ByteRange(5, 6), None)
    for bad in (None, "bytes 9-3/10", "items 0-1/2", "bytes */10"):
        with pytest.raises(RangeProtocolError):
            parse_content_range(bad)


def _multipart(parts: list[tuple[ByteRange, bytes]], boundary: str = "B0undary") -> bytes:
    out = b""
    for r, data in parts:
        out += (
            (
                f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Range: bytes {r.start}-{r.stop - 1}/1000\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def test_multipart_parse_with_boundary_lookalike_in_data() -> None:
    parts = [(ByteRange(0, 10), b"--B0undary"), (ByteRange(20, 23), b"\r\n-")]
    body = _multipart(parts)
    assert parse_multipart_byteranges(body, "multipart/byteranges; boundary=B0undary") == parts
    assert parse_multipart_byteranges(body, 'multipart/byteranges; boundary="B0undary"') == parts
    with pytest.raises(RangeProtocolError):
        parse_multipart_byteranges(body, "multipart/byteranges")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 500)), min_size=1, max_size=60),
    st.integers(1, 8),
    st.integers(0, 2000),
)
def test_plan_covers_every_range_within_limits(
    spans: list[tuple[int, int]], max_ranges: int, gap: int
) -> None:
    wanted = [ByteRange(a, a + n) for a, n in spans]
    plan = plan_requests(wanted, RangePolicy(merge_gap_bytes=gap), max_ranges)
    asked = [r for req in plan for r in req]
    assert all(len(req) <= max_ranges for req in plan)
    assert all(any(a.contains(w) for a in asked) for w in wanted)
    if max_ranges == 1:
        assert len(asked) == 1
