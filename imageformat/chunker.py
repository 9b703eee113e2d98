"""zstd:chunked content chunking: zero holes + bup-style rolling checksum (spec formats.md §1.5).

Per file (fresh state): a maximal run of >= 1024 zero bytes is a `zeros` chunk; every other
byte is rolled into a rolling checksum (window 64, char offset 31) and a data chunk ends after
a byte where the low 16 bits of `s2` are all ones. Hole bytes are rolled in too, without testing.

Vectorised: with P = prefix sums of the bytes and Q = prefix sums of P (mod 2^16: only the low
16 bits are tested),
`s2[i] = 124992 + Q[i] - Q[i-64] - 64*P[i-64]` (window starts all zero), so the split test for a
whole block of bytes is a few numpy passes. Blocks carry P/Q and the open zero run across their
boundary, so memory stays O(block) for any file size. `reference_chunks` is the byte-at-a-time
model used by tests.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WINDOW = 64
CHAR_OFFSET = 31
SPLIT_BITS = 16
SPLIT_MASK = (1 << SPLIT_BITS) - 1
HOLE_MIN = 1024
S1_INIT = WINDOW * CHAR_OFFSET  # 1984
S2_INIT = WINDOW * (WINDOW - 1) * CHAR_OFFSET  # 124992
BLOCK_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """Chunk [offset, offset+size) of a file's content; `zeros` marks a hole."""

    offset: int
    size: int
    zeros: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.size


def _split_points(
    arr: np.ndarray, carry_p: np.uint16, carry_q: np.uint16, tail: np.ndarray
) -> tuple[np.ndarray, np.uint16, np.uint16]:
    """Indices i (local to `arr`) where the split test holds after rolling in arr[i].

    Only the low 16 bits of s2 matter and every step is a ring operation, so all sums are
    kept mod 2^16. `tail` = the 64 bytes before `arr` (zeros at file start); carry_p/carry_q =
    P and Q just before `tail`'s first byte. Also returns P and Q just before the last 64
    bytes of `arr` (the next block's carries).
    """
    x = np.concatenate((tail, arr))
    p = np.cumsum(x, dtype=np.uint16)
    p += carry_p
    q = np.cumsum(p, dtype=np.uint16)
    q += carry_q
    n = arr.shape[0]
    # s2 for local index i uses P/Q at (64+i) and (i) in x coordinates.
    s2 = q[WINDOW:] - q[:n]
    s2 -= p[:n] << np.uint16(6)
    s2 += np.uint16(S2_INIT & SPLIT_MASK)
    hits = np.flatnonzero(s2 == SPLIT_MASK)
    return hits, p[-WINDOW - 1], q[-WINDOW - 1]


def _zero_runs(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the maximal runs of zero bytes in `arr`."""
    z = np.zeros(arr.shape[0] + 2, dtype=np.int8)
    np.equal(arr, 0, out=z[1:-1].view(np.bool_))
    d = np.diff(z)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


BytesLike = bytes | bytearray | memoryview | mmap.mmap


def find_chunks(data: BytesLike, *, block_bytes: int = BLOCK_BYTES) -> list[ChunkSpan]:
    """The zstd:chunked chunks of one file's content, tiling it exactly (empty list for b"")."""
    buf = np.frombuffer(data, dtype=np.uint8)
    n = buf.shape[0]
    if n == 0:
        return []
    holes: list[tuple[int, int]] = []
    splits: list[np.ndarray] = []
    carry_p = np.uint16(0)
    carry_q = np.uint16(0)
    tail = np.zeros(WINDOW, dtype=np.uint8)
    open_run: int | None = None  # start of a zero run that reaches the previous block's end
    for base in range(0, n, block_bytes):
        arr = buf[base : base + block_bytes]
        m = arr.shape[0]
        sp, carry_p, carry_q = _split_points(arr, carry_p, carry_q, tail)
        if sp.size:
            splits.append(sp + base)
        tail = np.concatenate((tail, arr))[-WINDOW:]
        starts, ends = _zero_runs(arr)
        keep = (ends - starts >= HOLE_MIN) | (starts == 0) | (ends == m)
        for s, e in zip((starts[keep] + base).tolist(), (ends[keep] + base).tolist(), strict=True):
            if open_run is not None:
                if s == base:
                    s = open_run
                elif open_run is not None and base - open_run >= HOLE_MIN:
                    holes.append((open_run, base))
                open_run = None
            if e == base + m and e < n:
                open_run = s
            elif e - s >= HOLE_MIN:
                holes.append((s, e))
        if open_run is not None and open_run < base and not (starts.size and starts[0] == 0):
            if base - open_run >= HOLE_MIN:
                holes.append((open_run, base))
            open_run = None
    return _assemble(n, holes, np.concatenate(splits) if splits else np.empty(0, dtype=np.int64))


BATCH_FILE_MAX = 1 << 20  # files below this size are chunked together
_BATCH_BYTES = 8 << 20


def find_chunks_many(datas: Sequence[BytesLike]) -> list[list[ChunkSpan]]:
    """`find_chunks` of every buffer; small ones are chunked in one numpy pass per batch.

    Concatenating the files with 64 zero bytes before each gives every file exactly its own
    rolling sums: in `Q[i] - Q[i-64] - 64*P[i-64]` the prefix carried in from earlier files
    cancels, because the window before a file start holds only zeros. Holes are taken per file
    by clipping the zero runs of the concatenation to each file.
    """
    out: list[list[ChunkSpan] | None] = [None] * len(datas)
    batch: list[int] = []
    batch_bytes = 0
    for i, d in enumerate(datas):
        n = len(d)
        if n == 0:
            out[i] = []
        elif n >= BATCH_FILE_MAX:
            out[i] = find_chunks(d)
        else:
            batch.append(i)
            batch_bytes += n + WINDOW
            if batch_bytes >= _BATCH_BYTES:
                _chunk_batch(datas, batch, out)
                batch, batch_bytes = [], 0
    if batch:
        _chunk_batch(datas, batch, out)
    return [o if o is not None else [] for o in out]


def _chunk_batch(datas: Sequence[BytesLike], idx: list[int], out: list[list[ChunkSpan] | None]) -> None:
    sizes = np.array([len(datas[i]) for i in idx], dtype=np.int64)
    starts = np.cumsum(sizes + WINDOW) - sizes  # file k occupies [starts[k], starts[k] + sizes[k])
    total = int(starts[-1] + sizes[-1])
    cat = np.zeros(total, dtype=np.uint8)
    for k, i in enumerate(idx):
        s = int(starts[k])
        cat[s : s + int(sizes[k])] = np.frombuffer(datas[i], dtype=np.uint8)
    hits, _, _ = _split_points(cat, np.uint16(0), np.uint16(0), np.zeros(WINDOW, dtype=np.uint8))
    zs, ze = _zero_runs(cat)
    long_runs = (ze - zs) >= HOLE_MIN
    zs, ze = zs[long_runs], ze[long_runs]
    hit_file = np.searchsorted(starts, hits, side="right") - 1
    hit_bounds = np.searchsorted(hit_file, np.arange(len(idx) + 1), side="left")
    run_first = np.searchsorted(ze, starts, side="right")  # first run ending after the file start
    for k, i in enumerate(idx):
        s, n = int(starts[k]), int(sizes[k])
        file_hits = hits[hit_bounds[k] : hit_bounds[k + 1]] - s
        file_hits = file_hits[file_hits < n]  # separator zeros after the file are not its bytes
        holes: list[tuple[int, int]] = []
        r = int(run_first[k])
        while r < zs.shape[0] and zs[r] < s + n:
            a, b = max(int(zs[r]) - s, 0), min(int(ze[r]) - s, n)
            if b - a >= HOLE_MIN:
                holes.append((a, b))
            r += 1
        if not holes and file_hits.size == 0:
            out[i] = [ChunkSpan(0, n)]
        else:
            out[i] = _assemble(n, holes, file_hits)


def _assemble(n: int, holes: list[tuple[int, int]], splits: np.ndarray) -> list[ChunkSpan]:
    out: list[ChunkSpan] = []
    if holes:
        hs = np.array([h[0] for h in holes], dtype=np.int64)
        he = np.array([h[1] for h in holes], dtype=np.int64)
        idx = np.searchsorted(hs, splits, side="right") - 1
        inside = (idx >= 0) & (splits < he[np.maximum(idx, 0)])
        splits = splits[~inside]
    cuts = iter((splits + 1).tolist())
    nxt = next(cuts, None)
    pos = 0
    for hs_, he_ in [*holes, (n, n)]:
        while nxt is not None and nxt <= hs_:
            if nxt > pos:
                out.append(ChunkSpan(pos, nxt - pos))
                pos = nxt
            nxt = next(cuts, None)
        if hs_ > pos:
            out.append(ChunkSpan(pos, hs_ - pos))
        if he_ > hs_:
            out.append(ChunkSpan(hs_, he_ - hs_, zeros=True))
        pos = he_
        while nxt is not None and nxt <= pos:
            nxt = next(cuts, None)
    return out


def reference_chunks(data: bytes) -> list[ChunkSpan]:
    """Byte-at-a-time model of §1.5 (slow; for tests only)."""
    n = len(data)
    is_hole = bytearray(n)
    i = 0
    while i < n:
        if data[i] == 0:
            j = i
            while j < n and data[j] == 0:
                j += 1
            if j - i >= HOLE_MIN:
                is_hole[i:j] = b"\x01" * (j - i)
            i = j
        else:
            i += 1
    s1, s2 = S1_INIT, S2_INIT
    window = [0] * WINDOW
    p = 0
    out: list[ChunkSpan] = []
    start = 0
    i = 0
    while i < n:
        if is_hole[i]:
            if i > start:
                out.append(ChunkSpan(start, i - start))
            j = i
            while j < n and is_hole[j]:
                d = window[p]
                s1 = (s1 - d) & 0xFFFFFFFF
                s2 = (s2 + s1 - WINDOW * (d + CHAR_OFFSET)) & 0xFFFFFFFF
                window[p] = 0
                p = (p + 1) % WINDOW
                j += 1
            out.append(ChunkSpan(i, j - i, zeros=True))
            start = i = j
            continue
        c = data[i]
        d = window[p]
        s1 = (s1 + c - d) & 0xFFFFFFFF
        s2 = (s2 + s1 - WINDOW * (d + CHAR_OFFSET)) & 0xFFFFFFFF
        window[p] = c
        p = (p + 1) % WINDOW
        i += 1
        if (s2 & SPLIT_MASK) == SPLIT_MASK:
            out.append(ChunkSpan(start, i - start))
            start = i
    if n > start:
        out.append(ChunkSpan(start, n - start))
    return out


__all__ = ["HOLE_MIN", "ChunkSpan", "find_chunks", "find_chunks_many", "reference_chunks"]
