"""Building the cheap real images: busybox in every format, python in one; shipped traces match them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from experiments import realimages
from experiments.record_traces import (
    TRACE_SPECS,
    load_shipped_trace,
    missing_paths,
    prefetch_paths,
    shipped_trace_path,
)
from imageformat.toc import LayerFormat
from imageformat.verify import verify_image
from startup.trace import Op
from tests.helpers import require_root, require_tool, unavailable


@pytest.mark.parametrize("fmt", [f.value for f in realimages.FORMATS])
def test_busybox_builds_and_verifies_in_every_format(image_cache: Path, fmt: str) -> None:
    require_tool("busybox")
    built = realimages.image_record("busybox", fmt)
    assert built.path.is_relative_to(image_cache)
    report = verify_image(built.path, "busybox")
    assert report.manifest_digest == built.manifest_digest
    (layer,) = report.layers
    assert layer.format.value == fmt and layer.compressed_size == built.blob_bytes
    landmark = 1 if fmt == "estargz" else 0  # eStargz writers always add a (1-byte) landmark file
    assert layer.files == built.files + landmark and layer.file_bytes == built.file_bytes + landmark
    assert 0 < built.blob_bytes < built.file_bytes  # busybox compresses
    if LayerFormat(fmt).lazy:
        (toc,) = realimages.load_tocs(built.path, "busybox")
        assert toc.by_path["bin/busybox"].size == os.path.getsize(
            realimages.prepare_tree("busybox") / "bin/busybox"
        )
        assert toc.by_path["bin/sh"].link_name == "busybox"
    else:
        with pytest.raises(realimages.ImageRecipeError, match="no TOC"):
            realimages.load_tocs(built.path, "busybox")
    # the second call is a cache hit: same record, nothing rebuilt
    mtime = built.path.stat().st_mtime_ns
    assert realimages.image_record("busybox", fmt) == built
    assert built.path.stat().st_mtime_ns == mtime
    meta = json.loads(built.path.with_name(built.path.name + ".json").read_text())
    assert meta["manifest_digest"] == built.manifest_digest


def test_busybox_tree_runs_the_startup_script(image_cache: Path) -> None:
    require_root()
    require_tool("busybox")
    root = realimages.prepare_tree("busybox")
    r = subprocess.run(
        [require_tool("chroot"), str(root), "/app/start.sh"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "starting lab-app on lazylab-busybox"
    assert r.stdout.splitlines()[-1] == "ready"


def test_python_recipe_builds_and_imports_json_and_ssl(image_cache: Path) -> None:
    try:
        root = realimages.prepare_tree("python")
    except realimages.ImageRecipeError as e:
        unavailable(str(e))  # Debian's python3.11 packages are absent
    built = realimages.image_record("python", "zstd:chunked")
    (toc,) = realimages.load_tocs(built.path, "python")
    assert "usr/lib/python3.11/json/__init__.py" in toc.by_path
    assert built.file_bytes > 20_000_000 and built.files > 500
    require_root()
    code = "import json, ssl, hashlib; print(json.dumps(hashlib.sha256(b'x').hexdigest()[:8]))"
    r = subprocess.run(
        [require_tool("chroot"), str(root), "/usr/bin/python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '"2d711642"'


@pytest.mark.parametrize(
    "name", sorted(n for n, s in TRACE_SPECS.items() if s.image in ("busybox", "python"))
)
def test_shipped_trace_paths_exist_in_the_image(image_cache: Path, name: str) -> None:
    assert shipped_trace_path(name).exists(), f"{name} is not shipped"
    trace = load_shipped_trace(name)
    image = TRACE_SPECS[name].image
    try:
        built = realimages.image_record(image, "zstd:chunked")
    except realimages.ImageRecipeError as e:
        unavailable(str(e))
    tocs = realimages.load_tocs(built.path, image)
    assert missing_paths(trace, tocs) == []
    for op in trace:
        if op.op is Op.READ:
            entry = tocs[0].by_path[op.path]
            target = tocs[0].by_path[entry.link_name] if entry.type.value == "hardlink" else entry
            assert op.offset + op.length <= target.size, op


def test_busybox_prioritized_by_its_shipped_trace(image_cache: Path) -> None:
    require_tool("busybox")
    paths = prefetch_paths(load_shipped_trace("busybox_shell_script"))
    assert "app/start.sh" in paths
    built = realimages.image_record("busybox", "zstd:chunked", prioritize=paths)
    assert built.path.name.startswith("busybox-zstd-chunked-prio-")
    (toc,) = realimages.load_tocs(built.path, "busybox")
    assert toc.prefetch is not None and toc.prefetch.length > 0
    order = [e.path for e in toc.regular_files()]
    landmark = order.index(".prefetch.landmark")
    assert set(paths) <= set(order[:landmark])
    plain = realimages.image_record("busybox", "zstd:chunked")
    assert plain.path != built.path and plain.manifest_digest != built.manifest_digest


def test_prune_removes_only_stale_builds(image_cache: Path) -> None:
    require_tool("busybox")
    kept = realimages.image_record("busybox", "gzip")
    oci = image_cache / "images" / "oci"
    stale = oci / "busybox-gzip-0000000000000000"
    stale.mkdir()
    (oci / "busybox-gzip-0000000000000000.json").write_text(
        json.dumps(
            {**json.loads(kept.path.with_name(kept.path.name + ".json").read_text()), "tree_key": "0" * 16}
        )
    )
    old_tree = image_cache / "images" / "trees" / "busybox-0000000000000000"
    building = image_cache / "images" / "trees" / "busybox-0000000000000000.tmp-1"
    old_tree.mkdir()
    building.mkdir()
    assert sorted(realimages.prune()) == sorted([stale, old_tree])
    assert kept.path.is_dir() and building.is_dir() and realimages.prepare_tree("busybox").is_dir()
    assert realimages.image_record("busybox", "gzip") == kept
