"""On-disk registry storage: content-addressed, atomic, restart-safe.

Layout under the root (distribution-like):
    blobs/<alg>/<hex>                                  blob bytes (manifests too)
    repositories/<repo>/_layers/<alg>/<hex>            link: blob belongs to repo (empty file)
    repositories/<repo>/_manifests/revisions/<alg>/<hex>   JSON ManifestInfo
    repositories/<repo>/_manifests/tags/<tag>          the tag's digest
    uploads/<id>                                       upload session data (not visible as a blob)
    tmp/                                               temp files renamed into place
Every visible file is written to tmp/, fsynced and renamed (os.replace), so an interrupted write leaves
nothing visible, and two concurrent pushes of the same blob both rename identical bytes into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .storage import ManifestInfo, Storage, Upload

_COPY_CHUNK = 1 << 20
_PATHS_CACHED = 4096  # resolved blob/repository paths kept per storage (the map is cleared when full)


class DiskStorage(Storage):
    def __init__(self, root: str | Path) -> None:
        super().__init__()
        self.root = Path(root).resolve()
        # Path.resolve() costs an lstat per component; a blob GET needs its paths several times
        self._paths: dict[tuple[str, str], Path] = {}
        for d in ("blobs", "repositories", "uploads", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        # Upload sessions do not survive a restart (their hash state is in memory): clear leftovers.
        for stale in (self.root / "uploads").iterdir():
            stale.unlink(missing_ok=True)
        for stale in (self.root / "tmp").iterdir():
            stale.unlink(missing_ok=True)

    # ------------------------------------------------------------------ paths
    def _inside(self, p: Path) -> Path:
        # Names/tags/digests are validated by regex before they get here; this is a second fence.
        rp = p.resolve()
        if self.root not in rp.parents:
            raise ValueError(f"path escapes the storage root: {p}")
        return rp

    def _resolved(self, kind: str, name: str) -> Path:
        """root/kind/name, resolved and fenced once per name."""
        p = self._paths.get((kind, name))
        if p is None:
            if len(self._paths) >= _PATHS_CACHED:
                self._paths.clear()
            p = self._paths[kind, name] = self._inside(self.root / kind / name)
        return p

    def _blob(self, digest: str) -> Path:
        alg, hexd = digest.split(":", 1)
        return self._resolved("blobs", f"{alg}/{hexd}")

    def _repo(self, repo: str) -> Path:
        return self._resolved("repositories", repo)

    def _link(self, repo: str, digest: str) -> Path:
        alg, hexd = digest.split(":", 1)
        return self._repo(repo) / "_layers" / alg / hexd

    def _rev(self, repo: str, digest: str) -> Path:
        alg, hexd = digest.split(":", 1)
        return self._repo(repo) / "_manifests" / "revisions" / alg / hexd

    def _tag(self, repo: str, tag: str) -> Path:
        return self._repo(repo) / "_manifests" / "tags" / tag

    def _atomic_write(self, dest: Path, data: bytes, *, fsync: bool = True) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ blobs
    def blob_size(self, digest: str) -> int | None:
        try:
            return self._blob(digest).stat().st_size
        except FileNotFoundError:
            return None

    def blob_path(self, digest: str) -> Path | None:
        p = self._blob(digest)
        return p if p.exists() else None

    def read_blob(self, digest: str, start: int, stop: int) -> bytes:
        with open(self._blob(digest), "rb") as f:
            f.seek(start)
            return f.read(stop - start)

    def put_blob_bytes(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        dest = self._blob(digest)
        if not dest.exists():
            self._atomic_write(dest, data)
        return digest

    def repo_has_blob(self, repo: str, digest: str) -> bool:
        return self._link(repo, digest).exists() and self._blob(digest).exists()

    def link_blob(self, repo: str, digest: str) -> None:
        link = self._link(repo, digest)
        if not link.exists():
            self._atomic_write(link, b"", fsync=False)

    def unlink_blob(self, repo: str, digest: str) -> bool:
        link = self._link(repo, digest)
        if not link.exists():
            return False
        link.unlink(missing_ok=True)
        return True

    # ------------------------------------------------------------------ uploads
    def _upload_path(self, upload: Upload) -> Path:
        return self.root / "uploads" / upload.id

    def _open_upload(self, upload: Upload) -> None:
        upload.handle = open(self._upload_path(upload), "wb")

    def _write_upload(self, upload: Upload, data: bytes) -> None:
        upload.handle.write(data)

    def _finish_upload(self, upload: Upload, digest: str) -> None:
        f = upload.handle
        f.flush()
        os.fsync(f.fileno())
        f.close()
        dest = self._blob(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._upload_path(upload), dest)

    def _discard_upload(self, upload: Upload) -> None:
        if upload.handle is not None:
            upload.handle.close()
        self._upload_path(upload).unlink(missing_ok=True)

    def _upload_digest(self, upload: Upload, algorithm: str) -> str:
        upload.handle.flush()
        h = hashlib.new(algorithm)
        with open(self._upload_path(upload), "rb") as f:
            while chunk := f.read(_COPY_CHUNK):
                h.update(chunk)
        return f"{algorithm}:{h.hexdigest()}"

    # ------------------------------------------------------------------ manifests and tags
    def _save_revision(self, repo: str, info: ManifestInfo) -> None:
        self._atomic_write(self._rev(repo, info.digest), json.dumps(info.to_json()).encode())

    def _load_revision(self, repo: str, digest: str) -> ManifestInfo | None:
        try:
            info = ManifestInfo.from_json(json.loads(self._rev(repo, digest).read_text()))
        except FileNotFoundError:
            return None
        return info if self._blob(digest).exists() else None

    def _drop_revision(self, repo: str, digest: str) -> None:
        self._rev(repo, digest).unlink(missing_ok=True)

    def revisions(self, repo: str) -> list[ManifestInfo]:
        base = self._repo(repo) / "_manifests" / "revisions"
        if not base.exists():
            return []
        out = []
        for p in sorted(base.glob("*/*")):
            info = self._load_revision(repo, f"{p.parent.name}:{p.name}")
            if info is not None:
                out.append(info)
        return out

    def _set_tag(self, repo: str, tag: str, digest: str) -> None:
        self._atomic_write(self._tag(repo, tag), digest.encode())

    def _get_tag(self, repo: str, tag: str) -> str | None:
        try:
            return self._tag(repo, tag).read_text().strip()
        except FileNotFoundError:
            return None

    def _drop_tag(self, repo: str, tag: str) -> None:
        self._tag(repo, tag).unlink(missing_ok=True)

    def tags(self, repo: str) -> list[str]:
        d = self._repo(repo) / "_manifests" / "tags"
        if not d.exists():
            return []
        return sorted((p.name for p in d.iterdir()), key=lambda t: t.encode())

    def repo_exists(self, repo: str) -> bool:
        return (self._repo(repo) / "_layers").exists() or (self._repo(repo) / "_manifests").exists()

    def repositories(self) -> list[str]:
        base = self.root / "repositories"
        names = {str(p.parent.relative_to(base)) for p in base.rglob("_layers")}
        names |= {str(p.parent.relative_to(base)) for p in base.rglob("_manifests")}
        return sorted(names)
