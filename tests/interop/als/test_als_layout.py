"""The ALS mount as containers/storage sees it: layout, digest conventions, info, use/rmdir, whiteouts."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest
from als_images import build_layers, push, whiteout_trees

from emulator.als.layout import encode_ref
from imageformat.toc import LayerFormat
from registry_mock.app import running_registry
from tests.helpers import require_tool

pytestmark = pytest.mark.fuse


@pytest.mark.parametrize("fmt", [LayerFormat.ESTARGZ, LayerFormat.ZSTD_CHUNKED])
def test_layout_conventions_signals_and_whiteouts(tmp_path, als_store, fmt):
    skopeo = require_tool("skopeo")
    lower, upper = whiteout_trees(tmp_path / "trees")
    layers = build_layers([lower, upper], tmp_path / "oci", "v1", fmt)
    with running_registry() as reg:
        ref = f"{reg.address}/lab/wh:v1"
        push(skopeo, tmp_path / "oci", "v1", ref)
        image_dir = als_store.path / encode_ref(ref)
        assert stat.S_ISDIR(os.stat(image_dir).st_mode)
        # -- compressed-digest convention (c/storage <= 1.53) ---------------------------------
        up = image_dir / layers[1].digest
        for name in ("diff", "info", "blob"):
            os.stat(up / name)
        assert stat.S_IMODE(os.stat(up / "info").st_mode) == 0o400
        info = json.loads((up / "info").read_bytes())
        assert info["compressed-diff-digest"] == layers[1].digest
        assert info["compressed-size"] == layers[1].size
        assert info["diff-digest"] == layers[1].diff_id
        assert info["compression"] == (2 if fmt is LayerFormat.ESTARGZ else 4)
        # -- TOC-digest convention (c/storage >= 1.54) ----------------------------------------
        assert layers[1].toc_digest and layers[1].toc_digest != layers[1].digest
        by_toc = image_dir / layers[1].toc_digest
        info_toc = json.loads((by_toc / "info").read_bytes())
        assert info_toc == {
            "diff-size": -1,
            "compression": info["compression"],
            "toc-digest": layers[1].toc_digest,
            "flags": {"expected-layer-diffid": layers[1].diff_id},
        }
        # -- blob: the registry's compressed bytes, by range ----------------------------------
        blob = (tmp_path / "oci/blobs/sha256" / layers[1].digest.split(":")[1]).read_bytes()
        assert os.stat(up / "blob").st_size == len(blob)
        with open(up / "blob", "rb") as f:
            f.seek(10)
            assert f.read(100) == blob[10:110]
        # -- diff/: the upper layer in overlay's on-disk form ---------------------------------
        diff = up / "diff"
        assert sorted(os.listdir(diff / "etc")) == ["gone", "keep"]
        wh = os.lstat(diff / "etc/gone")
        assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
        assert os.getxattr(diff / "opq", "trusted.overlay.opaque") == b"y"
        assert os.listdir(diff / "opq") == ["new"]
        assert (diff / "etc/keep").read_bytes() == b"keep\n"
        assert (image_dir / layers[0].digest / "diff/etc/gone").read_bytes() == b"to be deleted\n"
        # -- unknown digests are absent; use/rmdir are signals answered with ENOENT ------------
        with pytest.raises(FileNotFoundError):
            os.stat(image_dir / ("sha256:" + "0" * 64) / "diff")
        with pytest.raises(OSError) as e:
            open(up / "use", "w").close()
        assert e.value.errno == errno.ENOENT
        with pytest.raises(OSError) as e:
            os.rmdir(up)
        assert e.value.errno == errno.ENOENT
        with pytest.raises(OSError) as e:
            open(up / "info", "w").close()
        assert e.value.errno == errno.EROFS
        assert set(os.listdir(als_store.path)) == {encode_ref(ref)}
    log = als_store.stop()
    assert "use " in log and "-> refcount 1" in log and "release " in log and "-> refcount 0" in log
