"""Real bytes for the scenario's synthetic images (`startup.synthimage` plans -> OCI layouts).

Each planned file gets deterministic content from its `content_key` (equal keys -> equal
bytes, so derived layers share files and chunks exactly as the plan says) with about the
layer's `compression_ratio`: every 4 KiB block is that fraction of random bytes followed by a
repeated text pattern (no long zero runs, so zstd:chunked makes no holes). Layers with the
same name are encoded once and shared between images.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from imageformat.build import encode_tar_into
from imageformat.detect import parse_format
from imageformat.oci import Descriptor, OciLayout, new_config
from imageformat.tree import source_tar
from startup.scenario import SyntheticImageSpec, SyntheticLayerSpec
from startup.synthimage import plan_layer

BLOCK = 4096
_FILLER = (b"lazy pulling starts containers before the image is local. " * 80)[:BLOCK]
FIXED_MTIME = 1_700_000_000


def synth_content(key: str, size: int, compression_ratio: float, seed: int) -> bytes:
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(key.encode())]))
    random_part = max(0, min(BLOCK, round(BLOCK * min(compression_ratio, 1.0))))
    blocks = -(-size // BLOCK)
    noise = rng.integers(0, 256, blocks * random_part, dtype=np.uint8).tobytes()
    out = bytearray()
    for b in range(blocks):
        out += noise[b * random_part : (b + 1) * random_part]
        out += _FILLER[: BLOCK - random_part]
    return bytes(out[:size])


def write_layer_tree(
    root: Path, spec: SyntheticLayerSpec, seed: int, layers: Mapping[str, SyntheticLayerSpec]
) -> None:
    import os

    for f in plan_layer(spec, seed, layers):
        p = root / f.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(synth_content(f.content_key, f.size_bytes, spec.compression_ratio, seed))
        os.utime(p, (FIXED_MTIME, FIXED_MTIME))
    for d in sorted({p for p in root.rglob("*") if p.is_dir()} | {root}, reverse=True):
        os.utime(d, (FIXED_MTIME, FIXED_MTIME))


def build_synthetic_images(images: list[SyntheticImageSpec], out_dir: Path, seed: int) -> dict[str, Path]:
    """One OCI layout per image (tag `latest`) under `out_dir`; returns image name -> layout."""
    layer_specs = {layer.name: layer for img in images for layer in img.layers}
    encoded: dict[str, tuple[Descriptor, str, Path]] = {}  # layer name -> (descriptor, diff_id, blob)
    out: dict[str, Path] = {}
    for img in images:
        layout = OciLayout.create(out_dir / img.name)
        descs, diff_ids = [], []
        for spec in img.layers:
            if spec.name not in encoded:
                with tempfile.TemporaryDirectory(prefix="lazylab-synth-") as tmp:
                    tree = Path(tmp) / "tree"
                    tree.mkdir()
                    write_layer_tree(tree, spec, seed, layer_specs)
                    tar_path = Path(tmp) / "layer.tar"
                    with open(tar_path, "w+b") as tar:
                        source_tar(tree, tar)
                        layer, desc, _ = encode_tar_into(layout, tar, parse_format(spec.format))
                encoded[spec.name] = (desc, layer.diff_id, layout.root / "blobs" / "sha256" / desc.digest[7:])
            else:
                desc, _, blob = encoded[spec.name]
                target = layout.root / "blobs" / "sha256" / desc.digest[7:]
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(blob.read_bytes())
            desc, diff_id, _ = encoded[spec.name]
            descs.append(desc)
            diff_ids.append(diff_id)
        layout.write_image(layers=descs, config=new_config(diff_ids), tag="latest")
        out[img.name] = out_dir / img.name
    return out
