"""Synthetic image layers as a deterministic file plan both engines can realise.

`plan_layer(spec, seed)` lists the layer's files (path, size, a content key): the simulator
turns the plan into a TOC with estimated compressed ranges (sim/image.py); the emulator can
write real bytes of the given sizes and compressibility. Files of a `derived_from` layer keep
the base layer's paths and sizes; a `changed_fraction` of them get new content (new key), the
rest are the same content (same key) — what partial pulls reuse.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from startup.scenario import SyntheticLayerSpec

FILES_PER_DIR = 64


@dataclass(frozen=True, slots=True)
class SynthFile:
    path: str
    size_bytes: int
    content_key: str  # equal keys = equal content (and equal digests)


def _seed_for(name: str, seed: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, zlib.crc32(name.encode())])


def _sizes(spec: SyntheticLayerSpec, rng: np.random.Generator) -> list[int]:
    n = spec.files
    if spec.size_sigma == 0:
        raw = np.ones(n)
    else:
        raw = rng.lognormal(mean=0.0, sigma=spec.size_sigma, size=n)
    sizes = np.floor(raw / raw.sum() * spec.total_bytes).astype(np.int64)
    sizes = np.maximum(sizes, 1)
    # put the rounding remainder on the largest file so the total is exact
    diff = spec.total_bytes - int(sizes.sum())
    big = int(np.argmax(sizes))
    sizes[big] = max(1, int(sizes[big]) + diff)
    return [int(s) for s in sizes]


def plan_layer(
    spec: SyntheticLayerSpec, seed: int, layers: Mapping[str, SyntheticLayerSpec] | None = None
) -> tuple[SynthFile, ...]:
    """The files of `spec` (deterministic in spec, seed and the base layer chain)."""
    if spec.derived_from:
        if layers is None or spec.derived_from not in layers:
            raise ValueError(f"layer {spec.name!r} derives from unknown layer {spec.derived_from!r}")
        base = plan_layer(layers[spec.derived_from], seed, layers)
        rng = np.random.default_rng(_seed_for(spec.name, seed))
        changed = rng.random(len(base)) < spec.changed_fraction
        return tuple(
            SynthFile(f.path, f.size_bytes, f"{spec.name}/{i}" if changed[i] else f.content_key)
            for i, f in enumerate(base)
        )
    rng = np.random.default_rng(_seed_for(spec.name, seed))
    return tuple(
        SynthFile(f"d{i // FILES_PER_DIR:04d}/f{i:06d}", size, f"{spec.name}/{i}")
        for i, size in enumerate(_sizes(spec, rng))
    )
