"""Synthetic startup traces, shared by the simulator and the emulator.

`synthetic_trace(files, spec, seed)` picks a working set (a fraction of the image's file
bytes, files in random order), ranks it by Zipf popularity, and emits `spec.reads` reads:
each read picks a file by popularity and reads `read_bytes` at the file's cursor (sequential,
wrapping at the end) or at a uniformly random aligned offset (random). `think_s` of compute
precedes each read; `stats_per_read` adds stat operations (integer part always, fraction by
coin flip). Deterministic in (files, spec, seed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from startup.scenario import SyntheticWorkload
from startup.trace import Op, Trace, TraceOp


def working_set(files: Sequence[tuple[str, int]], fraction: float, rng: np.random.Generator) -> list[int]:
    """Indices of files (in random order) whose sizes add up to >= fraction of all bytes."""
    nonempty = [i for i, (_, size) in enumerate(files) if size > 0]
    if not nonempty:
        return []
    total = sum(files[i][1] for i in nonempty)
    order = rng.permutation(len(nonempty))
    chosen: list[int] = []
    acc = 0
    for j in order:
        i = nonempty[int(j)]
        chosen.append(i)
        acc += files[i][1]
        if acc >= fraction * total:
            break
    return chosen


def synthetic_trace(
    files: Sequence[tuple[str, int]],
    spec: SyntheticWorkload,
    seed: int | np.random.SeedSequence,
    *,
    name: str = "synthetic",
    image: str = "",
) -> Trace:
    """A trace over `files` ((path, size_bytes) pairs of the image's regular files)."""
    rng = np.random.default_rng(seed)
    ws = working_set(files, spec.working_set_fraction, rng)
    if not ws or spec.reads == 0:
        return Trace(name=name, image=image, ops=())
    ranks = np.arange(1, len(ws) + 1, dtype=float)
    weights = ranks ** (-spec.zipf_s)
    weights /= weights.sum()
    picks = rng.choice(len(ws), size=spec.reads, p=weights)
    coins = rng.random(spec.reads)
    offsets_u = rng.random(spec.reads)
    cursor = [0] * len(ws)
    ops: list[TraceOp] = []
    whole_stats = int(spec.stats_per_read)
    frac_stats = spec.stats_per_read - whole_stats
    for k in range(spec.reads):
        j = int(picks[k])
        path, size = files[ws[j]]
        for _ in range(whole_stats + (1 if coins[k] < frac_stats else 0)):
            ops.append(TraceOp(op=Op.STAT, path=path))
        length = min(spec.read_bytes, size)
        if spec.pattern == "sequential":
            off = cursor[j]
            if off >= size:
                off = 0
            length = min(length, size - off)
            cursor[j] = off + length
        else:
            blocks = max(1, -(-size // spec.read_bytes))
            off = min(int(offsets_u[k] * blocks), blocks - 1) * spec.read_bytes
            length = min(length, size - off)
        ops.append(TraceOp(op=Op.READ, path=path, offset=off, length=length, think_s=spec.think_s))
    return Trace(name=name, image=image, ops=tuple(ops))


def image_trace_seeds(seed: int, image_names: Iterable[str]) -> dict[str, np.random.SeedSequence]:
    """The seed of each image's synthetic trace, shared by both engines.

    Children 1..n of `SeedSequence(seed)` go to the image names in sorted order (child 0 is the
    arrival process's), so an image's trace does not depend on the order images are listed in.
    """
    names = sorted(set(image_names))
    children = np.random.SeedSequence(seed).spawn(len(names) + 1)[1:]
    return dict(zip(names, children, strict=True))
