"""How fast this host is right now: a fixed piece of the emulator's CPU work, timed.

Wall-clock experiments (validate) run for a quarter of an hour on a shared host whose speed drifts
by 20-50% over minutes. The probe decodes a fixed zstd frame (4 MiB out, filesystem-like: text,
zeros and incompressible runs) and hashes the result — what a node spends its CPU on while it
pulls — and keeps the fastest of a few repetitions (the least disturbed). Recorded beside each
emulated run, it lets the report tell a slow host from a wrong model.
"""

from __future__ import annotations

import functools
import hashlib
import time

import numpy as np
import zstandard

PROBE_OUTPUT_BYTES = 4 << 20
REPEATS = 3


@functools.cache
def _frame() -> bytes:
    rng = np.random.default_rng(20261128)
    blocks = []
    for i in range(PROBE_OUTPUT_BYTES // 65536):
        kind = i % 4
        if kind == 0:
            blocks.append(rng.bytes(65536))  # incompressible (already-compressed files)
        elif kind == 1:
            blocks.append(bytes(65536))  # zeros (sparse data, padding)
        else:  # text-like: a small alphabet, skewed
            blocks.append(rng.choice(np.frombuffer(b"etaoinshrdlu \n=_/.0123", np.uint8), 65536).tobytes())
    return zstandard.ZstdCompressor(level=3).compress(b"".join(blocks))


def host_probe_s(repeats: int = REPEATS) -> float:
    """Seconds for the fastest of `repeats` decode + sha256 passes over the probe frame."""
    frame = _frame()
    decoder = zstandard.ZstdDecompressor()
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        hashlib.sha256(decoder.decompress(frame)).digest()
        best = min(best, time.perf_counter() - t0)
    return best
