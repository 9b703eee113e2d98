"""podman 4.3.1 (containers/storage 1.43) pulls through our Additional Layer Store.

The image lives in registry_mock on 127.0.0.1; `lazylab store serve` mounts the ALS; podman's
storage.conf names it with `:ref`. The pull must complete while the registry's access log shows
no layer download (only the store's TOC range requests), `podman image mount` must expose the
files through overlay on top of the store's FUSE mount, and reading one file must fetch only
that file's chunks. A normal podman pull of the same image is the reference.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from als_helpers import Podman
from als_images import build_layers, push, whiteout_trees

from imageformat.build import build_image
from imageformat.toc import LayerFormat
from registry_mock.app import running_registry
from tests.helpers import require_tool

pytestmark = [pytest.mark.interop, pytest.mark.fuse]


def make_tree(root: Path, seed: int = 3) -> dict[str, bytes]:
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    files = {
        "etc/hello": b"hello from the additional layer store\n",
        "etc/os-release": b'NAME="lazylab"\nID=lazylab\n',
        "usr/lib/libbig.so": rng.integers(0, 256, 4_000_000, dtype=np.uint8).tobytes(),
        "usr/share/data.bin": rng.integers(0, 256, 2_000_000, dtype=np.uint8).tobytes(),
        "usr/share/doc/README": b"text " * 20_000,
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/hello-link").symlink_to("../../etc/hello")
    return files


def layer_records(records: list[dict], digest: str) -> list[dict]:
    return [r for r in records if r.get("digest") == digest and r.get("method") == "GET"]


@pytest.mark.parametrize("fmt", ["estargz", "zstd:chunked-legacy"])
def test_podman_pulls_through_the_store_without_downloading_layers(tmp_path, fmt, als_store, podman_factory):
    skopeo = require_tool("skopeo")
    src = tmp_path / "src"
    files = make_tree(src)
    built = build_image(src, tmp_path / "oci", "v1", fmt)
    layer = built.layers[0]
    with running_registry() as reg:
        ref = f"{reg.address}/lab/als:v1"
        subprocess.run(
            [skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'oci'}:v1", f"docker://{ref}"],
            check=True,
            capture_output=True,
            timeout=120,
        )

        # -- lazy: podman with the ALS ------------------------------------------------------------
        lazy = Podman(tmp_path / "lazy", als_store.path)
        podman_factory.append(lazy)
        mark = len(reg.records)
        t0 = time.perf_counter()
        lazy("pull", "--tls-verify=false", ref)
        lazy_pull_s = time.perf_counter() - t0
        pull_records = reg.records[mark:]
        layer_gets = layer_records(pull_records, layer.digest)
        assert layer_gets, "the store never asked for the layer's TOC: podman did not use the ALS"
        whole = [r for r in layer_gets if not r["ranges"]]
        assert not whole, f"whole-layer GETs during the lazy pull: {whole}\nstore log: {als_store.stop()}"
        layer_bytes_in_pull = sum(r["bytes_sent"] for r in layer_gets)
        assert layer_bytes_in_pull < layer.size * 0.05
        lazy_bytes = sum(r["bytes_sent"] for r in pull_records)
        # containers/storage links the layer to the store: diff -> <store>/<b64 ref>/<digest>/diff
        links = [p for p in (tmp_path / "lazy/graph/overlay").glob("*/diff") if p.is_symlink()]
        assert links and str(links[0].readlink()).startswith(str(als_store.path))

        mount = Path(lazy("image", "mount", ref).stdout.strip())
        mark = len(reg.records)
        assert (mount / "etc/hello").read_bytes() == files["etc/hello"]
        small_read = layer_records(reg.records[mark:], layer.digest)
        small_bytes = sum(r["bytes_sent"] for r in small_read)
        assert small_read and all(r["ranges"] for r in small_read)
        assert small_bytes < 64 * 1024, f"reading a 38-byte file moved {small_bytes} bytes"
        assert (mount / "usr/bin/hello-link").read_bytes() == files["etc/hello"]
        mark = len(reg.records)
        big = (mount / "usr/lib/libbig.so").read_bytes()
        assert hashlib.sha256(big).digest() == hashlib.sha256(files["usr/lib/libbig.so"]).digest()
        big_bytes = sum(r["bytes_sent"] for r in layer_records(reg.records[mark:], layer.digest))
        # only that file's chunks: its own compressed size, far from the whole blob
        assert len(files["usr/lib/libbig.so"]) * 0.9 < big_bytes < layer.size * 0.75
        assert sorted(p.name for p in (mount / "usr/share").iterdir()) == ["data.bin", "doc"]
        lazy("image", "unmount", ref)

        # -- reference: a normal podman pull of the same image -----------------------------------
        full = Podman(tmp_path / "full", None)
        podman_factory.append(full)
        mark = len(reg.records)
        t0 = time.perf_counter()
        full("pull", "--tls-verify=false", ref)
        full_pull_s = time.perf_counter() - t0
        full_bytes = sum(r["bytes_sent"] for r in reg.records[mark:])
        assert full_bytes >= layer.size
    print(
        f"\n[{fmt}] blob {layer.size} B | lazy pull {lazy_pull_s * 1e3:.0f} ms, {lazy_bytes} B "
        f"(layer {layer_bytes_in_pull} B) | normal pull {full_pull_s * 1e3:.0f} ms, {full_bytes} B | "
        f"small file read {small_bytes} B, 4 MB file read {big_bytes} B"
    )
    lazy("rmi", ref)  # containers/storage releases the layer: rmdir(<layer dir>)
    log = als_store.stop()
    signals = [line for line in log.splitlines() if " use " in line or " release " in line]
    assert signals and " use " in signals[0]
    assert signals[-1].endswith("-> refcount 0")  # every use was released
    assert not os.path.ismount(als_store.path)  # SIGTERM unmounted the store


def test_podman_stacks_store_layers_with_overlay_whiteouts(tmp_path, als_store, podman_factory):
    """Two lazily served layers: the upper one's whiteout and opaque directory apply through overlay."""
    skopeo = require_tool("skopeo")
    lower, upper = whiteout_trees(tmp_path / "trees")
    layers = build_layers([lower, upper], tmp_path / "oci", "v1", LayerFormat.ESTARGZ)
    with running_registry() as reg:
        ref = f"{reg.address}/lab/wh:v1"
        push(skopeo, tmp_path / "oci", "v1", ref)
        lazy = Podman(tmp_path / "lazy", als_store.path)
        podman_factory.append(lazy)
        mark = len(reg.records)
        lazy("pull", "--tls-verify=false", ref)
        for layer in layers:
            gets = layer_records(reg.records[mark:], layer.digest)
            assert gets and all(r["ranges"] for r in gets)
        mount = Path(lazy("image", "mount", ref).stdout.strip())
        assert sorted(os.listdir(mount / "etc")) == ["base", "keep"]
        assert os.listdir(mount / "opq") == ["new"]
        assert (mount / "etc/base").read_bytes() == b"base\n"
        assert (mount / "opq/new").read_bytes() == b"new\n"
        lazy("image", "unmount", ref)
