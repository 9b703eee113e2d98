"""skopeo 1.9.3 (containers/storage 1.43, generation a) as a peer of our zstd:chunked codec.

- skopeo converts a gzip image of a generated tree to zstd:chunked; our decoder locates the TOC
  from skopeo's manifest annotations, verifies it and decodes every file through the TOC ranges;
- our generation-(a) encoder run on the same tar yields the same chunks (sizes and digests, the
  thing cross-tool dedup keys on) and the same TOC entries apart from offsets;
- skopeo decompresses our blobs of both generations (copy to a gzip image) to the original tar.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from imageformat.fileread import read_file
from imageformat.tarscan import scan_tar
from imageformat.toc import EntryType
from imageformat.zstdchunked import encode_zstd_chunked
from imageformat.zstdchunked_toc import TAIL_BYTES, locate_zstd_chunked_toc, parse_zstd_chunked_toc
from tests.helpers import require_tool

pytestmark = pytest.mark.interop

MEDIA_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def _tree_tar(seed: int) -> bytes:
    """A PAX tar with random, text, holey, empty files, a symlink; no record padding (skopeo 1.9.3
    stops reading at the end-of-archive marker, formats.md §1.9)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    files = {
        "etc/hello": b"hello\n",
        "etc/empty": b"",
        "usr/bin/random": rng.bytes(700_000),
        "usr/share/text": b" ".join(b"word%d" % i for i in rng.integers(0, 999, 60_000)),
        "var/holes": rng.bytes(3000) + bytes(5000) + rng.bytes(2000) + bytes(2048),
        "var/zeros": bytes(100_000),
    }
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("etc", "usr", "usr/bin", "usr/share", "var"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tf.addfile(ti)
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 1_700_000_000.25, 0o644
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("etc/link")
        ti.type, ti.linkname, ti.mtime = tarfile.SYMTYPE, "hello", 1_700_000_000
        tf.addfile(ti)
    raw = buf.getvalue()
    return raw[: scan_tar(io.BytesIO(raw)).eoa_end]


def _blob(root: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return "sha256:" + digest, len(data)


def _write_layout(root: Path, tag: str, layer: bytes, media: str, diff_id: str, ann: dict[str, str]) -> None:
    root.mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "config": {},
    }
    cdig, csize = _blob(root, json.dumps(config).encode())
    ldig, lsize = _blob(root, layer)
    ldesc: dict[str, object] = {"mediaType": media, "digest": ldig, "size": lsize}
    if ann:
        ldesc["annotations"] = ann
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
        "layers": [ldesc],
    }
    mdig, msize = _blob(root, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": mdig,
                "size": msize,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))


def _read_layer(root: Path) -> tuple[dict, bytes]:  # type: ignore[type-arg]
    index = json.loads((root / "index.json").read_text())
    mdig = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((root / "blobs" / "sha256" / mdig).read_bytes())
    desc = manifest["layers"][0]
    return desc, (root / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()


def _skopeo(*args: str) -> None:
    skopeo = require_tool("skopeo")
    env = dict(os.environ, TZ="UTC")
    subprocess.run([skopeo, "--insecure-policy", "copy", "-q", *args], check=True, env=env, timeout=300)


def _toc_entries_without_offsets(blob: bytes, ann: dict[str, str]) -> tuple[list[dict], object]:  # type: ignore[type-arg]
    import zstandard

    loc = locate_zstd_chunked_toc(ann, len(blob), blob[-TAIL_BYTES:])
    toc = parse_zstd_chunked_toc(loc, blob[loc.toc.start : loc.toc.stop], blob_size=len(blob))
    raw = zstandard.ZstdDecompressor().decompress(blob[loc.toc.start : loc.toc.stop], max_output_size=1 << 26)
    entries = [
        {k: v for k, v in e.items() if k not in ("offset", "endOffset")} for e in json.loads(raw)["entries"]
    ]
    return entries, toc


def test_skopeo_zstd_chunked_is_decoded_and_our_legacy_encoder_chunks_alike(tmp_path: Path) -> None:
    tar = _tree_tar(seed=int.from_bytes(os.urandom(4), "little"))  # fresh content: no blob-info cache reuse
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    _write_layout(tmp_path / "src", "t", gzip.compress(tar, 6), MEDIA_GZIP, diff_id, {})
    _skopeo(
        "--dest-compress-format",
        "zstd:chunked",
        "oci:" + str(tmp_path / "src") + ":t",
        "oci:" + str(tmp_path / "dst") + ":t",
    )
    desc, blob = _read_layer(tmp_path / "dst")
    assert desc["mediaType"] == MEDIA_ZSTD
    ann = desc["annotations"]
    assert "io.containers.zstd-chunked.manifest-checksum" in ann
    theirs, toc = _toc_entries_without_offsets(blob, ann)
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for e in toc.entries:  # type: ignore[attr-defined]
            if e.type is EntryType.REG:
                expected = tf.extractfile(e.name).read()  # type: ignore[union-attr]
                assert read_file(toc, e.path, lambda rs: [blob[r.start : r.stop] for r in rs]) == expected  # type: ignore[arg-type]
    out = io.BytesIO()
    layer = encode_zstd_chunked(io.BytesIO(tar), out, generation="a")
    ours, our_toc = _toc_entries_without_offsets(out.getvalue(), dict(layer.annotations))
    chunk_digests = lambda t: {c.digest for e in t.entries for c in e.chunks}  # noqa: E731
    assert chunk_digests(our_toc) == chunk_digests(toc)
    assert ours == theirs


@pytest.mark.parametrize("gen", ["a", "b"])
def test_skopeo_decompresses_our_zstd_chunked(tmp_path: Path, gen: str) -> None:
    tar = _tree_tar(seed=11) + bytes(0)
    out = io.BytesIO()
    layer = encode_zstd_chunked(io.BytesIO(tar), out, generation=gen)  # type: ignore[arg-type]
    _write_layout(tmp_path / "src", "t", out.getvalue(), MEDIA_ZSTD, layer.diff_id, dict(layer.annotations))
    _skopeo(
        "--dest-compress-format",
        "gzip",
        "oci:" + str(tmp_path / "src") + ":t",
        "oci:" + str(tmp_path / "dst") + ":t",
    )
    desc, blob = _read_layer(tmp_path / "dst")
    assert desc["mediaType"] == MEDIA_GZIP
    assert gzip.decompress(blob) == tar
