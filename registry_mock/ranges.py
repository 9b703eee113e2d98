"""RFC 9110 §14 Range requests for blob GETs: the parser/planner and the multipart/byteranges layout.

The decision table is registry.md §3.2: exactly one part per requested range, in request order, never
merged (containers/image counts parts); 416 with `bytes */len` when nothing is satisfiable; 400 above
`max_ranges`; If-Range compared strongly with the ETag; a Range whose total exceeds the blob -> 200.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from imageformat.byterange import ByteRange

DEFAULT_MAX_RANGES = 1024
_SPEC_RE = re.compile(r"^(\d{0,19})-(\d{0,19})$")


class RangeOutcome(enum.Enum):
    FULL = "full"  # 200 with the whole body
    PARTIAL = "partial"  # 206: one range -> single part, several -> multipart/byteranges
    UNSATISFIABLE = "unsatisfiable"  # 416 with Content-Range: bytes */len
    TOO_MANY = "too_many"  # 400: more ranges than the configured cap


@dataclass(frozen=True, slots=True)
class RangePlan:
    outcome: RangeOutcome
    ranges: tuple[ByteRange, ...] = ()
    requested: int = 0  # number of range specs in the header (0 when there was none / it was ignored)

    @property
    def multipart(self) -> bool:
        return self.outcome is RangeOutcome.PARTIAL and len(self.ranges) > 1


FULL = RangePlan(RangeOutcome.FULL)


def count_range_specs(header: str) -> int:
    """Number of non-empty comma-separated specs after `bytes=` (0 if the unit is not bytes)."""
    unit, sep, rest = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return 0
    return sum(1 for s in rest.split(",") if s.strip())


def plan_ranges(
    header: str | None,
    size: int,
    *,
    etag: str | None = None,
    if_range: str | None = None,
    max_ranges: int = DEFAULT_MAX_RANGES,
) -> RangePlan:
    """Decide how to answer a GET with `Range: header` on a representation of `size` bytes."""
    if header is None:
        return FULL
    # §13.1.5 If-Range: a validator that does not match (strong comparison; dates never match: no
    # Last-Modified is sent) means "send the whole representation".
    if if_range is not None and (etag is None or if_range.strip() != etag):
        return FULL
    unit, sep, rest = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return FULL  # §14.2: an unknown range unit is ignored
    specs = [s.strip() for s in rest.split(",")]
    specs = [s for s in specs if s]
    if not specs:
        return RangePlan(RangeOutcome.UNSATISFIABLE)
    if len(specs) > max_ranges:
        return RangePlan(RangeOutcome.TOO_MANY, requested=len(specs))
    if size == 0:
        return RangePlan(RangeOutcome.FULL, requested=len(specs))  # nothing is satisfiable; 200 is safest
    out: list[ByteRange] = []
    for spec in specs:
        m = _SPEC_RE.match(spec)
        if not m:
            return RangePlan(RangeOutcome.UNSATISFIABLE, requested=len(specs))
        first_s, last_s = m.group(1), m.group(2)
        if not first_s:
            if not last_s:
                return RangePlan(RangeOutcome.UNSATISFIABLE, requested=len(specs))
            suffix = int(last_s)  # §14.1.2 suffix-range: the last N bytes
            if suffix > 0:
                out.append(ByteRange(max(0, size - suffix), size))
            continue
        first = int(first_s)
        if last_s:
            last = int(last_s)
            if last < first:
                return RangePlan(RangeOutcome.UNSATISFIABLE, requested=len(specs))
            if first < size:
                out.append(ByteRange(first, min(last, size - 1) + 1))
        elif first < size:
            out.append(ByteRange(first, size))
    if not out:
        return RangePlan(RangeOutcome.UNSATISFIABLE, requested=len(specs))
    if sum(r.length for r in out) > size:
        # overlapping sets larger than the blob: 200, what Go's ServeContent does
        return RangePlan(RangeOutcome.FULL, requested=len(specs))
    return RangePlan(RangeOutcome.PARTIAL, tuple(out), requested=len(specs))


def content_range(r: ByteRange, size: int) -> str:
    return f"bytes {r.start}-{r.stop - 1}/{size}"


@dataclass(frozen=True, slots=True)
class MultipartLayout:
    """A multipart/byteranges body as (part header, range) pairs plus the closing delimiter (§14.6)."""

    boundary: str
    parts: tuple[tuple[bytes, ByteRange], ...]
    trailer: bytes

    @property
    def content_type(self) -> str:
        return f"multipart/byteranges; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        return sum(len(h) + r.length for h, r in self.parts) + len(self.trailer)


def new_boundary() -> str:
    """An unquoted alphanumeric boundary (30 hex chars, like Go's mime/multipart)."""
    return secrets.token_hex(15)


def multipart_layout(
    ranges: Sequence[ByteRange], size: int, content_type: str, boundary: str | None = None
) -> MultipartLayout:
    b = boundary or new_boundary()
    parts = []
    for i, r in enumerate(ranges):
        head = (
            ("\r\n" if i else "")
            + f"--{b}\r\nContent-Type: {content_type}\r\nContent-Range: {content_range(r, size)}\r\n\r\n"
        )
        parts.append((head.encode("ascii"), r))
    return MultipartLayout(b, tuple(parts), f"\r\n--{b}--\r\n".encode("ascii"))
