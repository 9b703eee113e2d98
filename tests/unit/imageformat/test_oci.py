"""OCI image layout: write, resolve by tag, strict validation, atomic writes."""

from __future__ import annotations

import json

import pytest

from imageformat.errors import ContentDigestError, LayoutError
from imageformat.oci import MEDIA_TYPE_MANIFEST, REF_NAME, Descriptor, OciLayout, new_config


def _image(layout: OciLayout, tag: str, payload: bytes = b"layer") -> None:
    digest, size = layout.write_blob(payload)
    desc = Descriptor(
        media_type="application/vnd.oci.image.layer.v1.tar+gzip",
        digest=digest,
        size=size,
        annotations={"x": "y"},
    )
    layout.write_image(layers=[desc], config=new_config(["sha256:" + "a" * 64]), tag=tag)


def test_write_and_resolve(tmp_path):
    layout = OciLayout.create(tmp_path / "oci")
    _image(layout, "one")
    _image(layout, "two", b"other")
    _image(layout, "one", b"replaced")
    root = tmp_path / "oci"
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert [m["annotations"][REF_NAME] for m in index["manifests"]] == ["two", "one"]
    assert all(m["mediaType"] == MEDIA_TYPE_MANIFEST for m in index["manifests"])
    image = OciLayout.open(root).resolve("one")
    assert image.layers[0].annotations == {"x": "y"}
    assert image.diff_ids == ["sha256:" + "a" * 64]
    assert sorted(OciLayout.open(root).tags()) == ["one", "two"]
    assert not [p for p in root.rglob(".tmp-*")]  # atomic writes leave nothing behind
    with pytest.raises(LayoutError, match="no image tagged"):
        layout.resolve("three")
    with pytest.raises(LayoutError, match="name a tag"):
        layout.resolve(None)


def test_strict_validation(tmp_path):
    root = tmp_path / "oci"
    layout = OciLayout.create(root)
    _image(layout, "t")
    image = layout.resolve("t")
    with pytest.raises(LayoutError, match="not an OCI image layout"):
        OciLayout.open(tmp_path)
    # a manifest blob with different content than its digest
    layout.blob_path(image.manifest_descriptor.digest).write_bytes(b"x" * image.manifest_descriptor.size)
    with pytest.raises(ContentDigestError):
        layout.resolve("t")
    # size mismatch
    layout.blob_path(image.manifest_descriptor.digest).write_bytes(b"{}")
    with pytest.raises(LayoutError, match="bytes on disk"):
        layout.resolve("t")
    (root / "index.json").write_text(
        '{"schemaVersion": 2, "manifests": [{"digest": "sha256:zz", "size": 1}]}'
    )
    with pytest.raises(LayoutError, match="mediaType"):
        layout.resolve("t")
    (root / "index.json").write_text("{nope")
    with pytest.raises(LayoutError, match="invalid JSON"):
        OciLayout.open(root)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "9"}')
    with pytest.raises(LayoutError, match="imageLayoutVersion"):
        OciLayout.open(root)


def test_config_must_match_layers(tmp_path):
    layout = OciLayout.create(tmp_path / "oci")
    with pytest.raises(LayoutError, match="diff_ids"):
        layout.write_image(layers=[], config=new_config(["sha256:" + "a" * 64]), tag="t")
    with pytest.raises(LayoutError, match="not a valid digest"):
        Descriptor(media_type="x", digest="sha256:../../etc", size=1)


def test_create_refuses_a_non_empty_foreign_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LayoutError, match="not empty"):
        OciLayout.create(tmp_path)
