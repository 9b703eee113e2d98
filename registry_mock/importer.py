"""Seed registry storage from an OCI image layout without HTTP (`lazylab registry import`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from imageformat.digest import is_digest

from .disk import DiskStorage
from .errors import RegistryConfigError
from .manifests import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST
from .names import is_valid_name, is_valid_tag
from .storage import ManifestInfo, Storage

REF_ANNOTATION = "org.opencontainers.image.ref.name"


class ImportError_(RegistryConfigError):
    """The OCI layout cannot be imported (missing files, bad JSON, digest mismatch, unknown tag)."""


def _blob_path(layout: Path, digest: str) -> Path:
    if not is_digest(digest):
        raise ImportError_(f"invalid digest {digest[:100]!r} in {layout}")
    alg, hexd = digest.split(":", 1)
    return layout / "blobs" / alg / hexd


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ImportError_(f"{path} is missing") from None
    except ValueError as e:
        raise ImportError_(f"{path} is not valid JSON: {e}") from None


def _copy_blob(storage: Storage, layout: Path, repo: str, digest: str) -> None:
    src = _blob_path(layout, digest)
    if not src.exists():
        raise ImportError_(f"blob {digest} is missing from {layout}")
    if storage.blob_size(digest) is None:
        h = hashlib.new(digest.split(":")[0])
        if isinstance(storage, DiskStorage):
            fd, tmp = tempfile.mkstemp(dir=storage.root / "tmp")
            with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if f"{h.name}:{h.hexdigest()}" != digest:
                Path(tmp).unlink()
                raise ImportError_(f"blob {digest} in {layout} does not match its digest")
            dest = storage.root / "blobs" / digest.split(":")[0] / digest.split(":")[1]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(tmp, dest)
        else:
            data = src.read_bytes()
            if storage.put_blob_bytes(data) != digest:
                raise ImportError_(f"blob {digest} in {layout} does not match its digest")
    storage.link_blob(repo, digest)


def _import_manifest(storage: Storage, layout: Path, repo: str, desc: dict[str, Any], tags: list[str]) -> str:
    digest = desc.get("digest", "")
    data = _blob_path(layout, digest).read_bytes() if _blob_path(layout, digest).exists() else None
    if data is None:
        raise ImportError_(f"manifest {digest} is missing from {layout}")
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise ImportError_(f"manifest {digest} in {layout} does not match its digest")
    doc = json.loads(data)
    default_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    media_type = doc.get("mediaType") or desc.get("mediaType") or default_type
    if media_type not in MANIFEST_TYPES:
        raise ImportError_(f"unsupported manifest media type {media_type!r}")
    if media_type in INDEX_TYPES:
        for child in doc.get("manifests", []):
            _import_manifest(storage, layout, repo, child, [])
    else:
        for d in [doc["config"], *doc.get("layers", [])]:
            _copy_blob(storage, layout, repo, d["digest"])
    subject = doc.get("subject", {}).get("digest") if isinstance(doc.get("subject"), dict) else None
    info = ManifestInfo(digest=digest, media_type=media_type, size_bytes=len(data), subject=subject,
                        artifact_type=doc.get("artifactType"), annotations=doc.get("annotations"))
    storage.put_manifest(repo, data, info, tags)
    return digest


def import_oci_layout(oci_dir: str | Path, repo: str, tag: str, root: str | Path | Storage) -> str:
    """Copy the image tagged `tag` in the layout (or its only image) into `repo:tag`; return its digest."""
    if not is_valid_name(repo):
        raise ImportError_(f"invalid repository name {repo!r}")
    if not is_valid_tag(tag):
        raise ImportError_(f"invalid tag {tag!r}")
    layout = Path(oci_dir)
    index = _read_json(layout / "index.json")
    manifests = index.get("manifests", []) if isinstance(index, dict) else []
    chosen = [m for m in manifests if m.get("annotations", {}).get(REF_ANNOTATION) == tag]
    if not chosen and len(manifests) == 1:
        chosen = manifests
    if not chosen:
        names = sorted(str(m.get("annotations", {}).get(REF_ANNOTATION)) for m in manifests)
        raise ImportError_(f"no image tagged {tag!r} in {layout} (tags: {', '.join(names) or 'none'})")
    storage = root if isinstance(root, Storage) else DiskStorage(root)
    return _import_manifest(storage, layout, repo, chosen[0], [tag])
