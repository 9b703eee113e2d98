"""Multi-range blob GETs the way lazy/partial clients issue them, and every answer registries give.

Request side (registry.md §3.3, formats.md §2.4/§4.4): ranges are sorted, gaps of at most
`merge_gap_bytes` merged (c/storage `autoMergePartsThreshold` = 1024), then the smallest gaps
merged until at most `max_ranges_per_request` remain per request (c/storage 1024).

Answer side (RFC 9110 §14 and §15.3.7; registry.md §3.4):
- 206 `multipart/byteranges`: each part located by its own Content-Range (order-free, so a
  server that coalesces is fine); every asked range must be covered, lengths must agree.
- 206 single part: located by Content-Range (may cover several asked ranges when merged).
- 200 (Range ignored): stream from byte 0 and slice, stop after the last needed byte.
- 400/416/501 to a multi-range request: halve the ranges per request for this blob, down to
  single-range mode (one covering range), as c/storage and stargz-store do.
- 307 and other redirects: followed by aiohttp (Authorization is not forwarded cross-origin); the
  request goes out on emulator.rawhttp's lean path first and comes back to aiohttp for these.
Nothing here is trusted content: callers verify chunk/file digests after decoding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from emulator.client import RegistryClient, Response, RetryableBody
from emulator.errors import NotFoundError, RangeProtocolError, RegistryError
from emulator.recorder import timed
from emulator.reference import ImageReference
from imageformat.byterange import ByteRange, http_range_header, merge_ranges

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class RangePolicy:
    max_ranges_per_request: int = 1024
    merge_gap_bytes: int = 1024
    force_single_range: bool = False
    # c/storage (`mergeMissingChunks`): merge the smallest gaps until max_ranges remain, one request;
    # False (stargz-store style): send several requests of max_ranges each
    merge_to_fit: bool = False

    def __post_init__(self) -> None:
        if self.max_ranges_per_request < 1:
            raise ValueError(f"max_ranges_per_request (={self.max_ranges_per_request}) must be >= 1")
        if self.merge_gap_bytes < 0:
            raise ValueError(f"merge_gap_bytes (={self.merge_gap_bytes}) must be >= 0")


@dataclass(slots=True)
class RangeStats:
    requests: int = 0
    ranges: int = 0  # ranges asked in Range headers
    body_bytes: int = 0  # response body bytes read (what crossed the link)

    def add(self, other: RangeStats) -> None:
        self.requests += other.requests
        self.ranges += other.ranges
        self.body_bytes += other.body_bytes


def parse_content_range(value: str | None) -> tuple[ByteRange, int | None]:
    """`bytes a-b/len` -> (ByteRange(a, b+1), len or None)."""
    if value is not None and value.startswith("bytes "):  # the usual exact form, without the regex
        first, dash, rest = value[6:].partition("-")
        last, slash, total_text = rest.partition("/")
        if dash and slash and first.isdigit() and last.isdigit() and first.isascii() and last.isascii():
            a, b = int(first), int(last)
            if b >= a and (total_text == "*" or (total_text.isdigit() and total_text.isascii())):
                return ByteRange(a, b + 1), None if total_text == "*" else int(total_text)
    m = _CONTENT_RANGE.match(value or "")
    if not m or int(m.group(2)) < int(m.group(1)):
        raise RangeProtocolError(f"invalid Content-Range {value!r}")
    total = None if m.group(3) == "*" else int(m.group(3))
    return ByteRange(int(m.group(1)), int(m.group(2)) + 1), total


def parse_multipart_byteranges(body: bytes, content_type: str) -> list[tuple[ByteRange, bytes]]:
    """Parts of a `multipart/byteranges` body (RFC 9110 §14.6), each sized by its Content-Range."""
    m = _BOUNDARY.search(content_type)
    if not m:
        raise RangeProtocolError(f"multipart response without boundary: {content_type!r}")
    delim = b"--" + (m.group(1) or m.group(2)).encode()
    parts: list[tuple[ByteRange, bytes]] = []
    pos = body.find(delim)
    if pos < 0:
        raise RangeProtocolError("multipart body has no boundary line")
    while True:
        pos += len(delim)
        if body[pos : pos + 2] == b"--":
            return parts
        end_headers = body.find(b"\r\n\r\n", pos)
        if end_headers < 0:
            raise RangeProtocolError("multipart part without header end")
        headers = {}
        for line in body[pos:end_headers].split(b"\r\n"):
            if b":" in line:
                k, v = line.split(b":", 1)
                headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        rng, _ = parse_content_range(headers.get("content-range"))
        start = end_headers + 4
        data = body[start : start + rng.length]
        if len(data) != rng.length:
            raise RetryableBody(f"multipart part {rng} is short ({len(data)} bytes)")
        parts.append((rng, data))
        pos = body.find(delim, start + rng.length)
        if pos < 0:
            raise RangeProtocolError("multipart body ends without closing boundary")


def plan_requests(wanted: Sequence[ByteRange], policy: RangePolicy, max_ranges: int) -> list[list[ByteRange]]:
    """Merge and split the wanted ranges into requests of at most `max_ranges` ranges each."""
    merged = merge_ranges(wanted, policy.merge_gap_bytes)
    if not merged:
        return []
    if max_ranges == 1 or policy.force_single_range:
        return [[ByteRange(merged[0].start, merged[-1].stop)]]
    if policy.merge_to_fit and len(merged) > max_ranges:
        return [merge_to_count(merged, max_ranges)]
    return [merged[i : i + max_ranges] for i in range(0, len(merged), max_ranges)]


def merge_to_count(ranges: Sequence[ByteRange], count: int) -> list[ByteRange]:
    """Merge the smallest gaps of sorted disjoint `ranges` until at most `count` remain."""
    if len(ranges) <= count:
        return list(ranges)
    gaps = sorted(range(len(ranges) - 1), key=lambda i: (ranges[i + 1].start - ranges[i].stop, i))
    join = set(gaps[: len(ranges) - count])
    out = [ranges[0]]
    for i in range(1, len(ranges)):
        if i - 1 in join:
            out[-1] = ByteRange(out[-1].start, ranges[i].stop)
        else:
            out.append(ranges[i])
    return out


class RangeFetcher:
    """Fetches byte ranges of blobs through one RegistryClient; remembers per-blob downgrades."""

    def __init__(self, client: RegistryClient, policy: RangePolicy | None = None) -> None:
        self.client = client
        self.policy = policy or RangePolicy()
        self._max_ranges: dict[str, int] = {}  # blob digest -> current ranges per request

    def max_ranges_for(self, digest: str) -> int:
        return self._max_ranges.get(digest, self.policy.max_ranges_per_request)

    async def fetch(
        self, ref: ImageReference, digest: str, wanted: Sequence[ByteRange], *, layer: str = ""
    ) -> tuple[dict[ByteRange, bytes], RangeStats]:
        """Exactly the bytes of each wanted range (keys = the wanted ranges), and what it cost."""
        stats = RangeStats()
        got: list[tuple[ByteRange, bytes]] = []
        pending = [r for r in wanted if r.length > 0]
        while pending:
            max_ranges = self.max_ranges_for(digest)
            # one range goes out as it is (what planning it would give, minus the planning)
            batch = pending if len(pending) == 1 else plan_requests(pending, self.policy, max_ranges)[0]
            try:
                pieces = await self._request(ref, digest, batch, stats, layer)
            except RegistryError as e:
                if e.status in (400, 416, 501) and len(batch) > 1:
                    self._max_ranges[digest] = max(1, len(batch) // 2)
                    continue
                raise
            got.extend(pieces)
            pending = [r for r in pending if not _covered(r, pieces)]
        out = {r: _slice(r, got, digest) for r in wanted if r.length > 0}
        for r in wanted:
            if r.length == 0:
                out[r] = b""
        return out, stats

    async def _request(
        self, ref: ImageReference, digest: str, batch: list[ByteRange], stats: RangeStats, layer: str
    ) -> list[tuple[ByteRange, bytes]]:
        header = http_range_header(batch)
        last_needed = max(r.stop for r in batch)

        async def handle(resp: Response) -> list[tuple[ByteRange, bytes]]:
            if resp.status == 404:
                raise NotFoundError(f"blob {digest}: unknown to {ref.host}/{ref.repository}", 404)
            if resp.status == 200:  # Range ignored: stream from 0 and slice (registry.md §3.3)
                buf = bytearray()
                async for data in resp.content.iter_chunked(1 << 20):
                    buf += data
                    if len(buf) >= last_needed:
                        break
                stats.body_bytes += len(buf)
                if len(buf) < last_needed:
                    raise RetryableBody(f"blob {digest}: 200 body ended at {len(buf)} < {last_needed}")
                return [(ByteRange(0, len(buf)), bytes(buf))]
            if resp.status != 206:
                raise RegistryError(f"blob {digest}: range request answered {resp.status}", resp.status)
            body = await resp.read()
            stats.body_bytes += len(body)
            if resp.content_length is not None and len(body) != resp.content_length:
                raise RetryableBody(f"blob {digest}: 206 body short ({len(body)}/{resp.content_length})")
            ctype = resp.headers.get("Content-Type", "")
            if ctype.lower().startswith("multipart/"):
                parts = parse_multipart_byteranges(body, ctype)
            else:
                rng, _ = parse_content_range(resp.headers.get("Content-Range"))
                if len(body) != rng.length:
                    raise RetryableBody(f"blob {digest}: 206 body {len(body)} != Content-Range {rng}")
                parts = [(rng, body)]
            for r in batch:  # RFC 9110 lets a server coalesce; it may not leave asked bytes out
                if not _covered(r, parts):
                    raise RangeProtocolError(
                        f"blob {digest}: asked {r.to_http()} but the response covers only "
                        + ",".join(p.to_http() for p, _ in parts)
                    )
            return parts

        with timed(self.client.recorder, "range_get", count=len(batch), layer=layer) as t:
            before = stats.body_bytes
            stats.requests += 1
            stats.ranges += len(batch)
            parts = await self.client.call(
                ref,
                "GET",
                f"/blobs/{digest}",
                handle,
                headers={"Range": header, "Accept-Encoding": "identity"},
                what=f"blob {digest[:19]} ranges",
                lean=True,
            )
            t.nbytes = stats.body_bytes - before
            self.client.body_bytes += t.nbytes
        return parts


def _covered(r: ByteRange, parts: Sequence[tuple[ByteRange, bytes]]) -> bool:
    return any(p.contains(r) for p, _ in parts)


def _slice(r: ByteRange, pieces: Sequence[tuple[ByteRange, bytes]], digest: str) -> bytes:
    for p, data in pieces:
        if p.contains(r):
            return data[r.start - p.start : r.stop - p.start]
    raise RangeProtocolError(f"blob {digest}: range {r.to_http()} missing from every response")
