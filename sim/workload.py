"""Workloads: the `Trace` each pod replays, compiled against an image into fetch units.

A recorded trace (`workload.kind = "trace"`) is replayed as is; a synthetic one is generated per
image by `startup.tracegen` (the same generator the emulator uses) from the image's merged file
list, with one seed per image. Every pod of an image replays that image's trace (the same
container does the same startup). Compilation maps each read to (layer, chunk range, fetch
units) once per image, so replay costs no TOC lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.image import SimImage, SimLayer
from sim.params import CalibratedParams
from startup.scenario import EmptyWorkload, SyntheticWorkload, TraceWorkload, WorkloadSpec
from startup.trace import Op, Trace
from startup.tracegen import synthetic_trace


@dataclass(frozen=True, slots=True)
class Step:
    think_s: float
    layer: int  # -1: metadata only (stat/open/listdir) or a path not in the image
    length: int  # bytes read (0 for metadata)
    chunks: range  # chunk indices in the layer
    units: tuple[int, ...]  # fetch units the read needs (lazy)


@dataclass
class CompiledTrace:
    trace: Trace
    steps: list[Step]
    local_cost_s: float  # replay from a local rootfs: think + local op + read costs
    units_by_layer: dict[int, set[int]]  # every unit of the files the trace opens or reads (trace prefetch)

    @property
    def reads(self) -> int:
        return sum(1 for s in self.steps if s.length > 0)


def build_trace(spec: WorkloadSpec, image: SimImage, seed: np.random.SeedSequence, base_dir_resolve) -> Trace:  # type: ignore[no-untyped-def]
    if isinstance(spec, EmptyWorkload):
        return Trace(name="empty", image=image.name, ops=())
    if isinstance(spec, TraceWorkload):
        return Trace.load(base_dir_resolve(spec.path))
    if isinstance(spec, SyntheticWorkload):
        return synthetic_trace(
            image.regular_files(), spec, seed, name=f"synthetic-{image.name}", image=image.name
        )
    raise TypeError(f"unknown workload {spec!r}")


def _units_of(layer: SimLayer, chunks: range, granularity: str, block_bytes: int) -> tuple[int, ...]:
    if not layer.lazy or not len(chunks):
        return ()
    u = layer.units(granularity, block_bytes)
    firsts = u.chunk_first[chunks.start : chunks.stop]
    lasts = u.chunk_last[chunks.start : chunks.stop]
    sel = firsts >= 0
    if granularity == "block":
        return tuple(range(int(firsts[sel].min()), int(lasts[sel].max()) + 1)) if sel.any() else ()
    return tuple(sorted({int(x) for x in firsts[sel]}))


def compile_trace(
    trace: Trace, image: SimImage, params: CalibratedParams, granularity: str, block_bytes: int
) -> CompiledTrace:
    """Steps with their fetch units; the prefetch set is every unit of each file the trace opens
    or reads, whole (a recorded prioritized list names files, and an optimized image lays whole
    files out before its landmark — as the emulator's `trace` prefetch does)."""
    steps: list[Step] = []
    local = 0.0
    by_layer: dict[int, set[int]] = {}
    for op in trace:
        local += op.think_s + params.local_op_s
        whole = image.paths.get(op.path.lstrip("/")) if op.op in (Op.READ, Op.OPEN) else None
        if whole is not None:
            wl, wf = whole
            wlayer = image.layers[wl]
            by_layer.setdefault(wl, set()).update(
                _units_of(wlayer, wlayer.chunks_for(wf, 0, wf.size), granularity, block_bytes)
            )
        hit = whole if op.op is Op.READ else None
        if hit is None or op.length == 0:
            steps.append(Step(op.think_s, -1, 0, range(0), ()))
            continue
        li, f = hit
        layer = image.layers[li]
        length = max(0, min(op.length, f.size - op.offset))
        local += length / params.local_read_bytes_per_s
        chunks = layer.chunks_for(f, op.offset, length)
        steps.append(Step(op.think_s, li, length, chunks, _units_of(layer, chunks, granularity, block_bytes)))
    return CompiledTrace(trace, steps, local, by_layer)
