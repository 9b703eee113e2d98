"""ALS pieces without FUSE: path layout, info records, overlay whiteout presentation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.als.info import Convention, layer_info
from emulator.als.layerview import OPAQUE_XATTR, OverlayLayerView
from emulator.als.layout import Kind, decode_ref, encode_ref, parse
from emulator.fuse.localview import DirectoryView
from imageformat.byterange import ByteRange
from imageformat.toc import Compression, EntryType, LayerFormat, Toc, TocEntry

D = "sha256:" + "ab" * 32


def test_podman_reference_element_decodes():
    # the element podman 4.3.1 looked up (strace of a real pull)
    assert decode_ref("MTI3LjAuMC4xOjQ0MzE1L2xhYi9hcHA6djE=") == "127.0.0.1:44315/lab/app:v1"


@given(st.text(st.characters(codec="ascii", categories=("L", "N", "P")), min_size=1, max_size=60))
def test_ref_roundtrip(ref):
    assert decode_ref(encode_ref(ref)) == ref


@pytest.mark.parametrize(
    ("path", "kind", "rest"),
    [
        ("/", Kind.ROOT, "."),
        (f"/{encode_ref('h:1/r:t')}", Kind.IMAGE, "."),
        (f"/{encode_ref('h:1/r:t')}/{D}", Kind.LAYER, "."),
        (f"/{encode_ref('h:1/r:t')}/{D}/diff", Kind.DIFF, "."),
        (f"/{encode_ref('h:1/r:t')}/{D}/diff/usr/bin/sh", Kind.DIFF, "usr/bin/sh"),
        (f"/{encode_ref('h:1/r:t')}/{D}/info", Kind.INFO, "."),
        (f"/{encode_ref('h:1/r:t')}/{D}/blob", Kind.BLOB, "."),
        (f"/{encode_ref('h:1/r:t')}/{D}/use", Kind.USE, "."),
        (f"/{encode_ref('h:1/r:t')}/{D}/info/x", Kind.OTHER, "."),
        (f"/{encode_ref('h:1/r:t')}/sha256:short", Kind.OTHER, "."),
        ("/not base64!", Kind.OTHER, "."),
        ("/YQ", Kind.OTHER, "."),  # missing padding: not the canonical element
        ("/pool", Kind.OTHER, "."),
    ],
)
def test_parse(path, kind, rest):
    p = parse(path)
    assert p.kind is kind and p.rest == rest


def test_info_conventions():
    common = dict(
        compressed_digest=D,
        compressed_size=123,
        diff_id="sha256:" + "cd" * 32,
        toc_digest="sha256:" + "ef" * 32,
        compression=Compression.ZSTD,
        annotations={"io.containers.estargz.uncompressed-size": "4096"},
    )
    old = json.loads(layer_info(convention=Convention.COMPRESSED_DIGEST, **common))
    assert old == {
        "compressed-diff-digest": D,
        "compressed-size": 123,
        "diff-digest": "sha256:" + "cd" * 32,
        "diff-size": 4096,
        "compression": 4,
    }
    new = json.loads(layer_info(convention=Convention.TOC_DIGEST, **common))
    assert new == {
        "diff-size": -1,
        "compression": 4,
        "toc-digest": "sha256:" + "ef" * 32,
        "flags": {"expected-layer-diffid": "sha256:" + "cd" * 32},
    }
    common["annotations"] = {}
    common["compression"] = Compression.GZIP
    old = json.loads(layer_info(convention=Convention.COMPRESSED_DIGEST, **common))
    assert old["diff-size"] == -1 and old["compression"] == 2


class XattrDirectoryView(DirectoryView):
    def xattrs(self, path):
        return self.stat(path).xattrs


def test_overlay_layer_view_shows_whiteouts(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/keep").write_bytes(b"k")
    (tmp_path / "opq").mkdir()
    (tmp_path / "opq/new").write_bytes(b"n")
    entries = tuple(
        TocEntry(path=p, name=p, type=t)
        for p, t in [
            ("etc", EntryType.DIR),
            ("etc/keep", EntryType.REG),
            ("etc/.wh.gone", EntryType.REG),
            ("opq", EntryType.DIR),
            ("opq/.wh..wh..opq", EntryType.REG),
            ("opq/new", EntryType.REG),
        ]
    )
    toc = Toc(
        format=LayerFormat.ESTARGZ,
        compression=Compression.GZIP,
        entries=entries,
        digest=D,
        toc_range=ByteRange(0, 1),
    )
    view = OverlayLayerView(XattrDirectoryView(tmp_path), toc)
    assert sorted(view.listdir("etc")) == ["gone", "keep"]
    s = view.stat("etc/gone")
    assert s.type is EntryType.CHAR and (s.rdev_major, s.rdev_minor) == (0, 0)
    assert view.xattrs("opq")[OPAQUE_XATTR] == b"y"
    assert OPAQUE_XATTR not in view.xattrs("etc")
    assert view.read("etc/keep", 0, 10) == b"k"
    with pytest.raises(OSError):
        view.read("etc/gone", 0, 1)
