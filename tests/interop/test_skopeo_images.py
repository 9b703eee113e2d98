"""skopeo 1.9.3 reads, copies and recompresses our images of every layer format.

Recompressing into the other algorithm makes skopeo decompress each of our blobs completely,
so the decompressed stream of skopeo's output must equal our config diff_ids. Every run uses
fresh directories, so skopeo's blob-info cache cannot substitute blobs it saw before.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from imageformat.build import build_image
from imageformat.detect import BUILD_FORMATS, compression_of
from imageformat.oci import OciLayout
from imageformat.plain import iter_decompressed
from imageformat.sampletree import write_sample_tree
from imageformat.toc import Compression
from imageformat.verify import verify_image
from tests.helpers import require_tool

pytestmark = pytest.mark.interop


def skopeo(*args: str) -> str:
    exe = require_tool("skopeo")
    proc = subprocess.run([exe, "--insecure-policy", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"skopeo {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("skopeo") / "src"
    write_sample_tree(root, total_bytes=1 << 20, seed=5)
    return root


def stream_digests(oci: Path, tag: str) -> tuple[list[str], list[str]]:
    """(sha256 of each layer's decompressed stream, config diff_ids) of an OCI layout."""
    layout = OciLayout.open(oci)
    image = layout.resolve(tag)
    got = []
    for desc in image.layers:
        h = hashlib.sha256()
        with layout.open_blob(desc) as f:
            for block in iter_decompressed(compression_of(desc.media_type), f):
                h.update(block)
        got.append("sha256:" + h.hexdigest())
    return got, image.diff_ids


@pytest.mark.parametrize("fmt", BUILD_FORMATS, ids=lambda f: f.value)
def test_skopeo_reads_copies_and_recompresses(tree, tmp_path, fmt):
    ours = tmp_path / "ours"
    result = build_image(tree, ours, "t", fmt)
    layer = result.layers[0]

    info = json.loads(skopeo("inspect", f"oci:{ours}:t"))
    assert info["Layers"] == [layer.digest]
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{ours}:t"))
    assert raw["layers"][0].get("annotations", {}) == dict(layer.annotations)
    config = json.loads(skopeo("inspect", "--config", f"oci:{ours}:t"))
    assert config["rootfs"]["diff_ids"] == [layer.diff_id]

    # plain copy: the blob is carried over unchanged and still verifies
    skopeo("copy", f"oci:{ours}:t", f"oci:{tmp_path / 'copy'}:t")
    assert OciLayout.open(tmp_path / "copy").resolve("t").layers[0].digest == layer.digest
    verify_image(tmp_path / "copy", "t")

    # recompression to the other algorithm: skopeo must decompress our whole blob
    other = "zstd" if compression_of(layer.media_type) is Compression.GZIP else "gzip"
    out = tmp_path / "recompressed"
    skopeo("copy", "--dest-compress-format", other, f"oci:{ours}:t", f"oci:{out}:t")
    desc = OciLayout.open(out).resolve("t").layers[0]
    assert desc.digest != layer.digest and compression_of(desc.media_type).value == other
    streams, diff_ids = stream_digests(out, "t")
    assert streams == diff_ids == [layer.diff_id]

    # explicit gzip target as well (a no-op re-wrap for gzip-based layers)
    skopeo("copy", "--dest-compress-format", "gzip", f"oci:{ours}:t", f"oci:{tmp_path / 'gz'}:t")
    streams, diff_ids = stream_digests(tmp_path / "gz", "t")
    assert streams == diff_ids == [layer.diff_id]

    # the dir: transport reads our layout too
    skopeo("copy", f"oci:{ours}:t", f"dir:{tmp_path / 'dir'}")
    manifest = json.loads((tmp_path / "dir" / "manifest.json").read_text())
    assert manifest["layers"][0]["digest"] == layer.digest
    assert (tmp_path / "dir" / layer.digest.split(":")[1]).stat().st_size == layer.size


def _chunk_digests(oci: Path) -> set[str]:
    from imageformat.detect import read_layer_toc

    layout = OciLayout.open(oci)
    desc = layout.resolve("t").layers[0]
    with layout.open_blob(desc) as f:
        toc = read_layer_toc(desc.media_type, desc.annotations, f, desc.size)
    assert toc is not None
    return {c.digest for e in toc.regular_files() for c in e.chunks if c.digest}


def test_our_verify_accepts_skopeos_zstd_chunked_and_chunks_dedup(tree, tmp_path):
    from imageformat.toc import LayerFormat

    build_image(tree, tmp_path / "gz", "t", LayerFormat.GZIP)
    skopeo(
        "copy",
        "--dest-compress-format",
        "zstd:chunked",
        f"oci:{tmp_path / 'gz'}:t",
        f"oci:{tmp_path / 'sk'}:t",
    )
    report = verify_image(tmp_path / "sk", "t")  # our decoder on skopeo's layer: TOC, every file, diff_id
    assert report.layers[0].format is LayerFormat.ZSTD_CHUNKED_LEGACY
    build_image(tree, tmp_path / "ours", "t", LayerFormat.ZSTD_CHUNKED_LEGACY)
    assert _chunk_digests(tmp_path / "sk") == _chunk_digests(tmp_path / "ours")
