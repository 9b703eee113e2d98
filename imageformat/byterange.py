"""Half-open byte ranges; HTTP's inclusive `bytes=a-b` exists only at the HTTP edge."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True, slots=True)
class ByteRange:
    """The bytes [start, stop) of a blob or file."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ValueError(f"start (={self.start}) must be >= 0")
        if self.stop < self.start:
            raise ValueError(f"stop (={self.stop}) must be >= start (={self.start})")

    @property
    def length(self) -> int:
        return self.stop - self.start

    def __len__(self) -> int:
        return self.stop - self.start

    def overlaps(self, other: ByteRange) -> bool:
        return self.start < other.stop and other.start < self.stop

    def contains(self, other: ByteRange) -> bool:
        return self.start <= other.start and other.stop <= self.stop

    def shift(self, delta: int) -> ByteRange:
        return ByteRange(self.start + delta, self.stop + delta)

    def to_http(self) -> str:
        """The RFC 9110 §14.1.2 inclusive form `a-b` (empty ranges cannot be expressed)."""
        if self.stop <= self.start:
            raise ValueError("an empty range has no HTTP form")
        return f"{self.start}-{self.stop - 1}"


def merge_ranges(ranges: Iterable[ByteRange], max_gap: int = 0) -> list[ByteRange]:
    """Sort and merge ranges that overlap or whose gap is at most `max_gap` bytes."""
    merged: list[ByteRange] = []
    for r in sorted(ranges):
        if r.length == 0:
            continue
        if merged and r.start - merged[-1].stop <= max_gap:
            last = merged[-1]
            merged[-1] = ByteRange(last.start, max(last.stop, r.stop))
        else:
            merged.append(r)
    return merged


def http_range_header(ranges: Iterable[ByteRange]) -> str:
    """`Range:` header value for the given ranges, in the given order."""
    parts = [r.to_http() for r in ranges]
    if not parts:
        raise ValueError("at least one non-empty range is needed")
    return "bytes=" + ",".join(parts)
