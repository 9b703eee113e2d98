"""The vectorised chunker equals the byte-at-a-time model of formats.md §1.5 and the golden TOCs."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zc_support import VECTOR_NAMES, vector

from imageformat.chunker import HOLE_MIN, ChunkSpan, find_chunks, reference_chunks


def _tiles(spans: list[ChunkSpan], n: int) -> bool:
    pos = 0
    for s in spans:
        if s.offset != pos or s.size <= 0:
            return False
        pos = s.end
    return pos == n


@st.composite
def _payload(draw: st.DrawFn) -> bytes:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["zeros", "random", "text", "short-zeros"]))
        n = draw(st.integers(0, 120_000))
        if kind == "zeros":
            parts.append(bytes(draw(st.integers(0, 4000))))
        elif kind == "short-zeros":
            parts.append(bytes(draw(st.sampled_from([HOLE_MIN - 1, HOLE_MIN, HOLE_MIN + 1]))))
        elif kind == "random":
            parts.append(rng.bytes(n))
        else:
            parts.append(b"chunk me " * (n // 9))
    return b"".join(parts)


@settings(max_examples=40, deadline=None)
@given(_payload(), st.sampled_from([64, 1000, 4096, 1 << 22]))
def test_matches_reference_model_across_block_sizes(data: bytes, block: int) -> None:
    got = find_chunks(data, block_bytes=block)
    assert got == reference_chunks(data)
    assert _tiles(got, len(data))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (bytes(100_000), [ChunkSpan(0, 100_000, zeros=True)]),
        (
            b"x" * 10 + bytes(1024) + b"y" * 10,
            [ChunkSpan(0, 10), ChunkSpan(10, 1024, True), ChunkSpan(1034, 10)],
        ),
        (b"x" * 10 + bytes(1023) + b"y" * 10, [ChunkSpan(0, 1043)]),
    ],
)
def test_hole_threshold(data: bytes, expected: list[ChunkSpan]) -> None:
    assert find_chunks(data) == expected


def test_zero_run_across_block_boundary_is_one_hole() -> None:
    data = b"a" * 3000 + bytes(2000) + b"b" * 10
    for block in (3500, 4000, 4999, 5000):
        assert find_chunks(data, block_bytes=block) == [
            ChunkSpan(0, 3000),
            ChunkSpan(3000, 2000, True),
            ChunkSpan(5000, 10),
        ]


@pytest.mark.parametrize("name", [n for n in VECTOR_NAMES if n.startswith("a/")])
def test_boundaries_equal_golden_toc(name: str) -> None:
    v = vector(name)
    entries = json.loads(v.toc_json)["entries"]
    expected: dict[str, list[tuple[int, int, bool]]] = {}
    for e in entries:
        if e["type"] == "reg" and e.get("size"):
            size = e.get("chunkSize", e["size"])
            expected[e["name"]] = [(0, size, e.get("chunkType") == "zeros")]
        elif e["type"] == "chunk":
            expected[e["name"]].append((e["chunkOffset"], e["chunkSize"], e.get("chunkType") == "zeros"))
    with tarfile.open(v.source_path) as tf:
        for fname, spans in expected.items():
            data = tf.extractfile(fname).read()  # type: ignore[union-attr]
            assert [(s.offset, s.size, s.zeros) for s in find_chunks(data)] == spans, fname


def test_many_files_at_once_equal_one_by_one() -> None:
    from imageformat.chunker import find_chunks_many

    rng = np.random.default_rng(11)
    datas: list[bytes] = [b"", b"\0", bytes(1024), bytes(1023), b"x" + bytes(2000), bytes(2000) + b"x"]
    for _ in range(150):
        parts = [
            bytes(int(rng.integers(0, 3000)))
            if rng.integers(0, 3) == 0
            else rng.bytes(int(rng.integers(0, 90_000)))
            for _ in range(int(rng.integers(1, 4)))
        ]
        datas.append(b"".join(parts))
    datas.append(rng.bytes(1_500_000))  # big files take the single-file path
    assert find_chunks_many(datas) == [find_chunks(d) for d in datas]
