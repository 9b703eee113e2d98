"""Multi-layer test images for the ALS tests (built with imageformat, pushed with skopeo)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from imageformat.build import encode_tar_into
from imageformat.layer import EncodedLayer
from imageformat.oci import OciLayout, new_config
from imageformat.toc import LayerFormat
from imageformat.tree import source_tar


def build_layers(trees: Sequence[Path], oci_dir: Path, tag: str, fmt: LayerFormat) -> list[EncodedLayer]:
    """An image whose layers are the given directories, lowest first."""
    layout = OciLayout.create(oci_dir)
    layers, descs = [], []
    for tree in trees:
        with tempfile.TemporaryFile() as tar:
            source_tar(tree, tar)  # type: ignore[arg-type]
            layer, desc, _ = encode_tar_into(layout, tar, fmt)  # type: ignore[arg-type]
        layers.append(layer)
        descs.append(desc)
    layout.write_image(layers=descs, config=new_config([x.diff_id for x in layers]), tag=tag)
    return layers


def push(skopeo: str, oci_dir: Path, tag: str, ref: str) -> None:
    subprocess.run(
        [skopeo, "copy", "--dest-tls-verify=false", f"oci:{oci_dir}:{tag}", f"docker://{ref}"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def whiteout_trees(root: Path) -> tuple[Path, Path]:
    """Lower: etc/base, etc/gone, opq/old. Upper: etc/keep, a whiteout of etc/gone, opq/ opaque + opq/new."""
    lower, upper = root / "lower", root / "upper"
    for rel, data in {"etc/base": b"base\n", "etc/gone": b"to be deleted\n", "opq/old": b"hidden\n"}.items():
        (lower / rel).parent.mkdir(parents=True, exist_ok=True)
        (lower / rel).write_bytes(data)
    for rel, data in {
        "etc/keep": b"keep\n",
        "etc/.wh.gone": b"",
        "opq/.wh..wh..opq": b"",
        "opq/new": b"new\n",
    }.items():
        (upper / rel).parent.mkdir(parents=True, exist_ok=True)
        (upper / rel).write_bytes(data)
    return lower, upper
