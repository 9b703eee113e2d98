"""Fetch and verify a layer's TOC over HTTP with `imageformat.detect.read_layer_toc`.

The format parsers are synchronous and read the blob through a `fetch(ByteRange) -> bytes`
callable. Here they run against the bytes already fetched; when a parser asks for bytes not
yet here, it is stopped (`_NeedBytes`), those bytes are fetched in one range request, and the
parse is re-run. The first request already carries everything the annotations locate (the
footer tail, and zstd:chunked `manifest-position` / `tarsplit-position`), so a zstd:chunked
TOC costs one request (as c/storage >= 1.54 does) and an eStargz TOC two (footer, then TOC).
The parsers verify `manifest-checksum` / `toc.digest` themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

from emulator.client import LayerDescriptor
from emulator.errors import EmulatorError
from emulator.ranges import RangeFetcher, RangeStats
from emulator.recorder import timed
from emulator.reference import ImageReference
from imageformat.byterange import ByteRange
from imageformat.detect import TAIL_BYTES, read_layer_toc
from imageformat.toc import Toc

MAX_ROUNDS = 6
_POSITION_KEYS = (
    "io.github.containers.zstd-chunked.manifest-position",
    "io.containers.zstd-chunked.manifest-position",
    "io.github.containers.zstd-chunked.tarsplit-position",
)


class _NeedBytes(Exception):
    def __init__(self, wanted: ByteRange) -> None:
        super().__init__(wanted.to_http() if wanted.length else "")
        self.wanted = wanted


def annotated_ranges(annotations: Mapping[str, str], blob_size: int) -> list[ByteRange]:
    """Blob ranges the annotations point at (TOC, tar-split), ignoring malformed values."""
    out = []
    for key in _POSITION_KEYS:
        value = annotations.get(key)
        if not value:
            continue
        try:
            fields = [int(x) for x in value.split(":")]
        except ValueError:
            continue
        if len(fields) >= 2 and 0 <= fields[0] and fields[1] > 0 and fields[0] + fields[1] <= blob_size:
            out.append(ByteRange(fields[0], fields[0] + fields[1]))
    return out


async def fetch_toc(
    fetcher: RangeFetcher, ref: ImageReference, layer: LayerDescriptor
) -> tuple[Toc | None, RangeStats]:
    """The verified TOC of `layer` (None for a plain gzip/zstd layer) and what fetching it cost."""
    have: list[tuple[ByteRange, bytes]] = []
    stats = RangeStats()
    size = layer.size
    wanted = [ByteRange(max(0, size - TAIL_BYTES), size), *annotated_ranges(layer.annotations, size)]

    def fetch(r: ByteRange) -> bytes:
        r = ByteRange(min(r.start, size), min(r.stop, size))
        for got_range, data in have:
            if got_range.contains(r):
                return data[r.start - got_range.start : r.stop - got_range.start]
        raise _NeedBytes(r)

    with timed(fetcher.client.recorder, "toc_fetch", layer=layer.digest) as t:
        for _ in range(MAX_ROUNDS):
            if wanted:
                got, s = await fetcher.fetch(ref, layer.digest, wanted, layer=layer.digest)
                stats.add(s)
                have.extend(got.items())
                wanted = []
            try:
                toc = read_layer_toc(layer.media_type, layer.annotations, fetch, size)
            except _NeedBytes as need:
                if need.wanted.length == 0:
                    raise EmulatorError(
                        f"layer {layer.digest[:19]}: parser asked for an empty range"
                    ) from None
                wanted = [need.wanted]
                continue
            t.nbytes = stats.body_bytes
            return toc, stats
    raise EmulatorError(f"layer {layer.digest[:19]}: TOC not located after {MAX_ROUNDS} requests")
