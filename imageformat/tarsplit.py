"""Generation (b) tar-split: the NDJSON record stream that rebuilds the exact tar (formats.md §1.10).

Records: segments (`type` 2: raw tar bytes that are not file content, base64) and files
(`type` 1: name, size and the big-endian CRC-64/ISO of the content, base64). Concatenating
segment payloads and file contents in record order gives the original tar byte for byte.

CRC-64/ISO (Go `hash/crc64` ISO table) is computed in numpy lanes: the input is cut into N
equal lanes (front-padded with zeros, which leave a zero-initialised CRC register unchanged),
all lanes are advanced one byte per step with a table lookup, and the lane registers are
combined pairwise with the linear "append L zero bytes" operator. Small inputs use the table
loop directly.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import BinaryIO

import numpy as np

from imageformat.errors import ContentDigestError, TocError
from imageformat.gojson import go_string

SEGMENT = 2
FILE = 1
_POLY = 0xD800000000000000  # reflected ISO polynomial
_MASK64 = (1 << 64) - 1
_SMALL = 4096
_BATCH_MAX = 256 << 10  # larger buffers get lanes of their own
_BATCH_MIN = 8  # fewer buffers of a size class are not worth a shared lane loop


def _make_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()
_TABLE_NP = np.array(_TABLE, dtype=np.uint64)


def _raw_small(data: bytes | memoryview, reg: int = 0) -> int:
    t = _TABLE
    for b in bytes(data):
        reg = t[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


class _Shift:
    """The linear map `register -> register after appending n zero bytes`, as 8 byte tables."""

    def __init__(self, columns: list[int]) -> None:
        self.columns = columns
        cols = np.array(columns, dtype=np.uint64).reshape(8, 8)
        bits = (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1  # (256, 8)
        tables = np.zeros((8, 256), dtype=np.uint64)
        for i in range(8):
            tables ^= np.where(bits[:, i][None, :] == 1, cols[:, i][:, None], np.uint64(0))
        self.tables = tables
        self.py = tables.tolist()

    def apply(self, x: int) -> int:
        py = self.py
        return (
            py[0][x & 0xFF]
            ^ py[1][(x >> 8) & 0xFF]
            ^ py[2][(x >> 16) & 0xFF]
            ^ py[3][(x >> 24) & 0xFF]
            ^ py[4][(x >> 32) & 0xFF]
            ^ py[5][(x >> 40) & 0xFF]
            ^ py[6][(x >> 48) & 0xFF]
            ^ py[7][x >> 56]
        )

    def apply_np(self, x: np.ndarray) -> np.ndarray:
        b = x.view(np.uint8).reshape(-1, 8)
        out = self.tables[0][b[:, 0]]
        for k in range(1, 8):
            out ^= self.tables[k][b[:, k]]
        return out

    def then(self, other: _Shift) -> _Shift:
        """self followed by other."""
        return _Shift([other.apply(c) for c in self.columns])


@cache
def _shift_pow2(k: int) -> _Shift:
    """Appending 2**k zero bytes."""
    if k == 0:
        return _Shift([_raw_small(b"\0", 1 << j) for j in range(64)])
    half = _shift_pow2(k - 1)
    return half.then(half)


def _shift_apply(n: int, x: int) -> int:
    bit = 0
    while n:
        if n & 1:
            x = _shift_pow2(bit).apply(x)
        n >>= 1
        bit += 1
    return x


@lru_cache(maxsize=1)
def _table16() -> np.ndarray:
    """Advance a register whose only set bits are the low 16 by two zero bytes."""
    v = np.arange(65536, dtype=np.uint64)
    t8 = _TABLE_NP
    eight = np.uint64(8)
    v = t8[(v & np.uint64(0xFF)).astype(np.intp)] ^ (v >> eight)
    return t8[(v & np.uint64(0xFF)).astype(np.intp)] ^ (v >> eight)


def _raw_lanes(data: bytes | memoryview) -> int:
    """Zero-initialised CRC register after `data`, two bytes per step in 2^k parallel lanes."""
    n = len(data)
    lanes = min(8192, 1 << (math.isqrt(n).bit_length() + 1))  # ~4-16k lanes is fastest (measured)
    width_log2 = max(1, (-(-n // lanes) - 1).bit_length())
    lane_len = 1 << width_log2  # even, so lanes split into 16-bit words
    padded = np.zeros(lanes * lane_len, dtype=np.uint8)
    padded[lanes * lane_len - n :] = np.frombuffer(data, dtype=np.uint8)
    words = np.ascontiguousarray(padded.view(np.uint16).reshape(lanes, lane_len // 2).T)
    t16 = _table16()
    reg = np.zeros(lanes, dtype=np.uint64)
    low = reg.view(np.uint16)[::4]  # little-endian: the register's low 16 bits
    idx = np.empty(lanes, dtype=np.uint16)
    sixteen = np.uint64(16)
    for i in range(lane_len // 2):
        np.bitwise_xor(low, words[i], out=idx)
        reg >>= sixteen
        reg ^= np.take(t16, idx)
    k = width_log2
    while reg.shape[0] > 1:
        reg = _shift_pow2(k).apply_np(np.ascontiguousarray(reg[0::2])) ^ reg[1::2]
        k += 1
    return int(reg[0])


def crc64_iso(data: bytes | memoryview) -> int:
    """CRC-64/ISO as Go's `crc64.Checksum(data, crc64.MakeTable(crc64.ISO))`."""
    n = len(data)
    raw = _raw_small(data) if n < _SMALL else _raw_lanes(data)
    return _shift_apply(n, _MASK64) ^ raw ^ _MASK64


def _raw_batch(bufs: list[bytes | memoryview], width: int) -> list[int]:
    """Zero-initialised CRC registers of several buffers (each <= width bytes), one lane each."""
    mat = np.zeros((len(bufs), width), dtype=np.uint8)
    for row, b in zip(mat, bufs, strict=True):
        if len(b):
            row[width - len(b) :] = np.frombuffer(b, dtype=np.uint8)
    words = np.ascontiguousarray(mat.view(np.uint16).T)
    t16 = _table16()
    reg = np.zeros(len(bufs), dtype=np.uint64)
    low = reg.view(np.uint16)[::4]
    idx = np.empty(len(bufs), dtype=np.uint16)
    sixteen = np.uint64(16)
    for i in range(width // 2):
        np.bitwise_xor(low, words[i], out=idx)
        reg >>= sixteen
        reg ^= np.take(t16, idx)
    return [int(r) for r in reg]


def crc64_iso_many(bufs: Sequence[bytes | memoryview]) -> list[int]:
    """`crc64_iso` of every buffer; small buffers of similar size share numpy lanes (many small
    files cost about as much as one file of their total size)."""
    out: list[int | None] = [None] * len(bufs)
    buckets: dict[int, list[int]] = {}
    for i, b in enumerate(bufs):
        n = len(b)
        if n >= _BATCH_MAX:
            out[i] = crc64_iso(b)
        else:
            buckets.setdefault(max(6, (n - 1).bit_length()), []).append(i)
    for log2, members in buckets.items():
        if len(members) < _BATCH_MIN:
            for i in members:
                out[i] = crc64_iso(bufs[i])
            continue
        raws = _raw_batch([bufs[i] for i in members], 1 << log2)
        for i, raw in zip(members, raws, strict=True):
            out[i] = _shift_apply(len(bufs[i]), _MASK64) ^ raw ^ _MASK64
    return [int(c) for c in out]  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TarSplitRecord:
    type: int  # FILE or SEGMENT
    position: int
    payload: bytes | None  # segment bytes, or the 8-byte big-endian CRC of a file (None if empty)
    name: str = ""  # file records (surrogate-escaped if not UTF-8)
    size: int = 0


def segment_line(data: bytes | memoryview, position: int) -> bytes:
    b64 = base64.b64encode(data).decode("ascii")
    return f'{{"type":2,"payload":"{b64}","position":{position}}}\n'.encode()


def file_line(name: str, size: int, crc: int | None, position: int) -> bytes:
    try:
        name.encode("utf-8")
        name_part = f'"name":{go_string(name)},' if name else ""
    except UnicodeEncodeError:
        raw = base64.b64encode(name.encode("utf-8", "surrogateescape")).decode("ascii")
        name_part = f'"name_raw":"{raw}",'
    size_part = f'"size":{size},' if size else ""
    payload = "null" if crc is None else '"' + base64.b64encode(crc.to_bytes(8, "big")).decode() + '"'
    return f'{{"type":1,{name_part}{size_part}"payload":{payload},"position":{position}}}\n'.encode()


def trailing_segments(data: memoryview, start: int) -> Iterator[memoryview]:
    """Bytes after the end-of-archive marker, cut at 4096-byte boundaries of the input as the Go
    packer reads them, then one empty segment."""
    pos = 0
    while pos < len(data):
        step = 4096 - (start + pos) % 4096
        yield data[pos : pos + step]
        pos += step
    yield data[0:0]


def parse_tar_split(ndjson: bytes) -> list[TarSplitRecord]:
    """Decode the NDJSON records; TocError on anything malformed."""
    out: list[TarSplitRecord] = []
    for lineno, line in enumerate(ndjson.split(b"\n")):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            kind = obj["type"]
            position = obj["position"]
            raw_payload = obj.get("payload")
            payload = None if raw_payload is None else base64.b64decode(raw_payload, validate=True)
            if "name_raw" in obj and obj["name_raw"] is not None:
                name = base64.b64decode(obj["name_raw"]).decode("utf-8", "surrogateescape")
            else:
                name = obj.get("name") or ""
            size = obj.get("size") or 0
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            raise TocError(f"tar-split line {lineno + 1} is malformed: {e}") from None
        if kind not in (FILE, SEGMENT) or not isinstance(size, int) or size < 0:
            raise TocError(f"tar-split line {lineno + 1}: bad type/size")
        if not isinstance(position, int) or position != len(out):
            raise TocError(f"tar-split line {lineno + 1}: position {position} != {len(out)}")
        if kind == FILE and payload is not None and len(payload) != 8:
            raise TocError(f"tar-split line {lineno + 1}: CRC payload is not 8 bytes")
        if kind == SEGMENT and payload is None:
            payload = b""
        out.append(TarSplitRecord(type=kind, position=position, payload=payload, name=name, size=size))
    return out


def tar_size(records: Iterable[TarSplitRecord]) -> int:
    """Length of the tar the records rebuild (c/storage's tarSizeFromTarSplit)."""
    return sum(len(r.payload or b"") if r.type == SEGMENT else r.size for r in records)


class TarSplitView(io.RawIOBase):
    """The tar a tar-split describes, as a seekable file whose file contents read as zeros.

    Enough for `imageformat.tarscan` to re-derive every header (all header bytes are real)
    without having any file content at hand.
    """

    def __init__(self, records: Sequence[TarSplitRecord]) -> None:
        self._starts: list[int] = []
        self._pieces: list[bytes | int] = []  # segment bytes, or a length of file content
        pos = 0
        for r in records:
            piece: bytes | int = (r.payload or b"") if r.type == SEGMENT else r.size
            length = len(piece) if isinstance(piece, bytes) else piece
            if length:
                self._starts.append(pos)
                self._pieces.append(piece)
                pos += length
        self._size = pos
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        out = bytearray()
        k = max(0, bisect.bisect_right(self._starts, self._pos) - 1)
        while self._pos < end and k < len(self._pieces):
            piece, start = self._pieces[k], self._starts[k]
            length = len(piece) if isinstance(piece, bytes) else piece
            lo, hi = self._pos - start, min(length, end - start)
            if lo < hi:
                out += piece[lo:hi] if isinstance(piece, bytes) else bytes(hi - lo)
                self._pos = start + hi
            k += 1
        return bytes(out)


def reassemble_tar(
    records: Iterable[TarSplitRecord],
    content: Callable[[TarSplitRecord], bytes],
    out: BinaryIO,
    *,
    verify: bool = True,
) -> int:
    """Write the tar the records describe to `out`; `content(record)` gives a file record's bytes.

    Raises ContentDigestError when a file's size or CRC-64 disagrees with its record.
    Returns the number of bytes written.
    """
    written = 0
    for r in records:
        if r.type == SEGMENT:
            data = r.payload or b""
        else:
            data = content(r) if r.size else b""
            if len(data) != r.size:
                raise ContentDigestError(f"{r.name!r}: {len(data)} bytes, tar-split says {r.size}")
            if verify and r.size and r.payload is not None:
                if crc64_iso(data).to_bytes(8, "big") != r.payload:
                    raise ContentDigestError(f"{r.name!r}: CRC-64 does not match the tar-split")
        out.write(data)
        written += len(data)
    return written


__all__ = [
    "FILE",
    "SEGMENT",
    "TarSplitRecord",
    "TarSplitView",
    "crc64_iso",
    "crc64_iso_many",
    "file_line",
    "parse_tar_split",
    "reassemble_tar",
    "segment_line",
    "tar_size",
    "trailing_segments",
]
