"""Fixtures and helpers for the emulator's integration tests (a uniquely named module: several test
directories have a conftest.py, so tests import helpers from here, never from `conftest`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from emulator_imagetools import (
    RunningRegistry,
    docker_registry,
    make_tar,
    skopeo_push,
    write_oci_layout,
)

from tests.helpers import require_tool


def sample_files(seed: int = 7) -> dict[str, bytes | tuple[str, str]]:
    """A small image tree: tiny and large files, compressible and random data, links."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    big = rng.integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    text = b"".join(b"line %d of a config file\n" % i for i in range(20000))
    return {
        "etc/hello": b"hi\n",
        "etc/app.conf": text,
        "usr/bin/big": big,
        "usr/lib/libsmall.so": rng.integers(0, 256, 70_000, dtype=np.uint8).tobytes(),
        "usr/bin/link": ("symlink", "big"),
        "usr/bin/hard": ("hardlink", "usr/bin/big"),
        "var/empty": b"",
    }


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    require_tool("docker-registry")
    with docker_registry(tmp_path_factory.mktemp("docker-registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def pushed_image(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """`sample_files()` as a one-layer zstd:chunked image pushed by skopeo; (ref, files)."""
    require_tool("skopeo")
    files = sample_files()
    layout = tmp_path_factory.mktemp("oci")
    write_oci_layout(Path(layout), [make_tar(files)], "v1")
    ref = f"{registry.host}/lab/sample:v1"
    skopeo_push(Path(layout), "v1", ref)
    return ref, files


os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def write_tree(root: Path, files: dict[str, bytes | tuple[str, str]]) -> None:
    """Materialize `files` (see sample_files) as a directory tree."""
    for name, spec in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, tuple):
            kind, target = spec
            if kind == "symlink":
                p.symlink_to(target)
            elif kind == "hardlink":
                os.link(root / target, p)
            else:
                p.mkdir(exist_ok=True)
        else:
            p.write_bytes(spec)


@pytest.fixture(scope="session")
def built_images(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """`sample_files()` built by imageformat in every lazy format it can write, pushed unchanged by skopeo.

    Returns format name -> reference. Formats whose encoder is not available are left out.
    """
    require_tool("skopeo")
    from imageformat.build import build_image

    src = tmp_path_factory.mktemp("tree")
    write_tree(src, sample_files())
    out = {}
    import importlib.util

    modules = ("imageformat.zstdchunked", "imageformat.zstdchunked_toc")
    zstd_ready = all(importlib.util.find_spec(m) for m in modules)
    for fmt in ("estargz", "zstd:chunked", "zstd:chunked-legacy", "gzip"):
        if fmt.startswith("zstd") and not zstd_ready:
            continue
        layout = tmp_path_factory.mktemp("built")
        tag = fmt.replace(":", "-")
        try:
            build_image(src, layout, tag, fmt)
        except ImportError:
            continue
        ref = f"{registry.host}/lab/built:{tag}"
        skopeo_push(layout, tag, ref, compress_format=None)
        out[fmt] = ref
    return out


LAZY_FORMATS = ("estargz", "zstd:chunked", "zstd:chunked-legacy")


def available_formats() -> list[str]:
    import importlib.util

    modules = ("imageformat.zstdchunked", "imageformat.zstdchunked_toc")
    zstd_ready = all(importlib.util.find_spec(m) for m in modules)
    return [f for f in LAZY_FORMATS if zstd_ready or not f.startswith("zstd")]


class MockImages:
    """Sample trees built in every available lazy format and imported into one registry_mock storage."""

    def __init__(self, base: Path, seeds: tuple[int, ...] = (1, 2), total_bytes: int = 1 << 20) -> None:
        from imageformat.build import build_image
        from imageformat.sampletree import write_sample_tree
        from registry_mock.importer import import_oci_layout
        from registry_mock.storage import MemoryStorage

        self.storage = MemoryStorage()
        self.trees: dict[int, Path] = {}
        self.refs: dict[tuple[int, str], str] = {}  # (seed, format) -> "repo:tag"
        for seed in seeds:
            tree = base / f"tree-{seed}"
            write_sample_tree(tree, total_bytes=total_bytes, seed=seed)
            self.trees[seed] = tree
            for fmt in available_formats():
                tag = f"s{seed}-{fmt.replace(':', '-')}"
                layout = base / f"oci-{tag}"
                build_image(tree, layout, tag, fmt)
                import_oci_layout(layout, "lab/sample", tag, self.storage)
                self.refs[(seed, fmt)] = f"lab/sample:{tag}"

    def files(self, seed: int) -> dict[str, bytes]:
        """Regular files (symlinks excluded) of a tree: relative path -> content."""
        root = self.trees[seed]
        out = {}
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[p.relative_to(root).as_posix()] = p.read_bytes()
        return out


@pytest.fixture(scope="session")
def mock_images(tmp_path_factory: pytest.TempPathFactory) -> MockImages:
    return MockImages(tmp_path_factory.mktemp("mock-images"))
