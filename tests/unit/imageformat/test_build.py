"""build_image / convert_image in every format from the same tree; verify passes, contents equal."""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from imgtrees import layer_nodes, tar_bytes

from imageformat.build import build_image, convert_image
from imageformat.detect import BUILD_FORMATS
from imageformat.errors import ContentDigestError, FormatError
from imageformat.oci import OciLayout
from imageformat.plain import iter_decompressed
from imageformat.sampletree import write_sample_tree
from imageformat.toc import LayerFormat
from imageformat.verify import verify_image


@pytest.fixture(scope="module")
def tree(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("tree") / "src"
    write_sample_tree(root, total_bytes=3 << 20, seed=1)
    return root


def _files(oci, tag=None):  # type: ignore[no-untyped-def]
    """path -> content of the image's single layer, decoded as a stream."""
    layout = OciLayout.open(oci)
    image = layout.resolve(tag)
    from imageformat.detect import compression_of

    desc = image.layers[0]
    with layout.open_blob(desc) as f:
        raw = b"".join(iter_decompressed(compression_of(desc.media_type), f))
    tf = tarfile.open(fileobj=io.BytesIO(raw))
    return {
        m.name.removeprefix("./"): tf.extractfile(m).read()
        for m in tf.getmembers()  # type: ignore[union-attr]
        if m.isreg() and not m.name.endswith((".landmark", "stargz.index.json"))
    }


def _tree_files(root):  # type: ignore[no-untyped-def]
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.parametrize("fmt", BUILD_FORMATS, ids=lambda f: f.value)
def test_build_every_format_verifies_and_holds_the_tree(tree, tmp_path, fmt):
    result = build_image(tree, tmp_path / "oci", "t", fmt)
    report = verify_image(tmp_path / "oci", "t")
    layer = report.layers[0]
    assert layer.format is fmt and layer.diff_id == result.layers[0].diff_id
    assert (layer.toc_bytes > 0) == fmt.lazy
    files = _files(tmp_path / "oci", "t")
    expected = _tree_files(tree)
    # hardlinked copies are stored once as data
    assert {k: v for k, v in files.items() if k in expected} == {k: expected[k] for k in files}
    assert set(expected) - set(files) == {"usr/bin/hardlink-to-first"}


@pytest.mark.parametrize("fmt", [f for f in BUILD_FORMATS if f.lazy], ids=lambda f: f.value)
def test_prioritized_build_puts_files_before_the_landmark(tree, tmp_path, fmt):
    build_image(tree, tmp_path / "oci", "t", fmt, prioritize=["etc/app.d/conf03.conf", "usr/bin/f0002.bin"])
    from imageformat.detect import read_layer_toc

    layout = OciLayout.open(tmp_path / "oci")
    desc = layout.resolve("t").layers[0]
    with layout.open_blob(desc) as f:
        toc = read_layer_toc(desc.media_type, desc.annotations, f, desc.size)
    assert toc is not None and toc.prefetch is not None
    for path in ("etc/app.d/conf03.conf", "usr/bin/f0002.bin"):
        assert toc.entry(path).compressed_span.stop <= toc.prefetch.stop
    verify_image(tmp_path / "oci")


@pytest.mark.parametrize("fmt", BUILD_FORMATS, ids=lambda f: f.value)
def test_convert_gzip_to_each_format_and_back(tree, tmp_path, fmt):
    build_image(tree, tmp_path / "gz", "t", LayerFormat.GZIP)
    convert_image(tmp_path / "gz", tmp_path / "x", fmt)
    convert_image(tmp_path / "x", tmp_path / "back", LayerFormat.GZIP)
    for oci in ("x", "back"):
        verify_image(tmp_path / oci, "t")
    assert _files(tmp_path / "back") == _files(tmp_path / "gz")
    cfg = OciLayout.open(tmp_path / "x").resolve("t").config
    assert cfg["history"][-1]["created_by"].endswith(fmt.value)


def test_verify_names_the_first_problem(tree, tmp_path):
    build_image(tree, tmp_path / "oci", "t", LayerFormat.ESTARGZ)
    layout = OciLayout.open(tmp_path / "oci")
    desc = layout.resolve("t").layers[0]
    path = layout.blob_path(desc.digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(ContentDigestError, match="layer 0"):
        verify_image(tmp_path / "oci")


def test_build_rejects_bad_input(tmp_path):
    with pytest.raises(FormatError, match="unknown layer format"):
        build_image(tmp_path, tmp_path / "oci", "t", "bzip2")
    with pytest.raises(FormatError):
        build_image(tmp_path / "missing", tmp_path / "oci", "t", "gzip")


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(nodes=layer_nodes())
def test_generated_trees_round_trip_through_every_format(nodes):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.tar"
        src.write_bytes(tar_bytes(nodes))
        expected = {n.path: n.data for n in nodes if n.kind == "reg"}
        for fmt in BUILD_FORMATS:
            oci = Path(tmp) / fmt.value.replace(":", "-")
            build_image(src, oci, "t", fmt)
            verify_image(oci, "t")
            assert _files(oci, "t") == expected


def test_verify_catches_a_toc_that_disagrees_with_the_stream(tmp_path):
    """A self-consistent image (digests, diff_id, toc.digest all right) whose TOC omits an entry."""
    import gzip as gz
    import hashlib
    import json

    from imgtrees import sample_nodes

    from imageformat.errors import TocError
    from imageformat.estargz import TOC_DIGEST_ANNOTATION, encode_estargz, estargz_footer
    from imageformat.estargz_toc import parse_estargz_footer
    from imageformat.oci import Descriptor, new_config

    out = io.BytesIO()
    layer = encode_estargz(io.BytesIO(tar_bytes(sample_nodes())), out)
    blob = out.getvalue()
    toc_offset, _ = parse_estargz_footer(blob[-51:])
    member = gz.decompress(blob[toc_offset:-51])
    size = tarfile.TarInfo.frombuf(member[:512], "utf-8", "strict").size
    jtoc = json.loads(member[512 : 512 + size])
    jtoc["entries"] = [e for e in jtoc["entries"] if e["name"] != "pipe"]
    body = json.dumps(jtoc, indent="\t").encode()
    ti = tarfile.TarInfo("stargz.index.json")
    ti.size = len(body)
    raw_toc = ti.tobuf(tarfile.USTAR_FORMAT) + body + bytes(-len(body) % 512) + bytes(1024)
    forged = blob[:toc_offset] + gz.compress(raw_toc, mtime=0) + estargz_footer(toc_offset)
    layout = OciLayout.create(tmp_path / "oci")
    digest, blob_size = layout.write_blob(forged)
    diff_id = "sha256:" + hashlib.sha256(gz.decompress(forged)).hexdigest()
    annotations = {**layer.annotations, TOC_DIGEST_ANNOTATION: "sha256:" + hashlib.sha256(body).hexdigest()}
    desc = Descriptor(media_type=layer.media_type, digest=digest, size=blob_size, annotations=annotations)
    layout.write_image(layers=[desc], config=new_config([diff_id]), tag="t")
    with pytest.raises(TocError, match="different entries"):
        verify_image(tmp_path / "oci")
