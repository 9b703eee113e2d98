"""Registry storage: content-addressed blobs, per-repository blob links, manifests and tags, upload sessions.

`Storage` is the interface the handlers use; `MemoryStorage` keeps everything in dicts (tests) and
`registry_mock.disk.DiskStorage` keeps it on disk (atomic renames, survives restarts). Callers validate
names, tags and digests (registry_mock.names) before they reach storage.
"""

from __future__ import annotations

import hashlib
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RegistryError


@dataclass(frozen=True, kw_only=True)
class ManifestInfo:
    """What the registry remembers about a stored manifest besides its bytes."""

    digest: str
    media_type: str
    size_bytes: int
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest, "mediaType": self.media_type, "size": self.size_bytes,
            "subject": self.subject, "artifactType": self.artifact_type, "annotations": self.annotations,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ManifestInfo:
        return cls(digest=d["digest"], media_type=d["mediaType"], size_bytes=d["size"],
                   subject=d.get("subject"), artifact_type=d.get("artifactType"),
                   annotations=d.get("annotations"))


@dataclass(eq=False)
class Upload:
    """An upload session: bytes received so far and their running sha256."""

    id: str
    repo: str
    size_bytes: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    handle: Any = None  # backend-specific (open file or bytearray)
    busy: bool = False  # a request is writing to it right now


def new_upload_id() -> str:
    return secrets.token_urlsafe(24)


class Storage(ABC):
    """Backend-independent part: upload bookkeeping and manifest/tag semantics."""

    def __init__(self) -> None:
        self._uploads: dict[str, Upload] = {}

    # ------------------------------------------------------------------ blobs
    @abstractmethod
    def blob_size(self, digest: str) -> int | None:
        """Size of a globally stored blob, None if absent."""

    @abstractmethod
    def blob_path(self, digest: str) -> Path | None:
        """A file holding the blob (for sendfile), or None when the backend has no files."""

    @abstractmethod
    def read_blob(self, digest: str, start: int, stop: int) -> bytes | memoryview:
        """Bytes [start, stop) of a stored blob."""

    @abstractmethod
    def put_blob_bytes(self, data: bytes) -> str:
        """Store small content (manifests, imports) and return its sha256 digest."""

    @abstractmethod
    def repo_has_blob(self, repo: str, digest: str) -> bool: ...

    @abstractmethod
    def link_blob(self, repo: str, digest: str) -> None: ...

    @abstractmethod
    def unlink_blob(self, repo: str, digest: str) -> bool: ...

    def repo_blob_size(self, repo: str, digest: str) -> int | None:
        """Size of a blob linked into `repo` (None if it is not: blobs belong to their repositories)."""
        if not self.repo_has_blob(repo, digest):
            return None
        return self.blob_size(digest)

    # ------------------------------------------------------------------ uploads
    @abstractmethod
    def _open_upload(self, upload: Upload) -> None: ...

    @abstractmethod
    def _write_upload(self, upload: Upload, data: bytes) -> None: ...

    @abstractmethod
    def _finish_upload(self, upload: Upload, digest: str) -> None:
        """Make the upload's bytes the blob `digest` (already verified) and drop the session."""

    @abstractmethod
    def _discard_upload(self, upload: Upload) -> None: ...

    @abstractmethod
    def _upload_digest(self, upload: Upload, algorithm: str) -> str:
        """Digest of the upload's bytes with a non-default algorithm."""

    def new_upload(self, repo: str) -> Upload:
        upload = Upload(id=new_upload_id(), repo=repo)
        self._open_upload(upload)
        self._uploads[upload.id] = upload
        return upload

    def get_upload(self, repo: str, upload_id: str) -> Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.repo != repo:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown", detail={"id": upload_id})
        return upload

    def write_upload(self, upload: Upload, data: bytes) -> None:
        self._write_upload(upload, data)
        upload.hasher.update(data)
        upload.size_bytes += len(data)

    def commit_upload(self, upload: Upload, digest: str) -> None:
        """Verify the upload against `digest`, store it and link it into the upload's repository.

        A mismatch discards the session and raises DIGEST_INVALID: no blob is stored under a wrong digest.
        """
        algorithm = digest.split(":", 1)[0]
        got = ("sha256:" + upload.hasher.hexdigest()) if algorithm == "sha256" else self._upload_digest(
            upload, algorithm)
        self._uploads.pop(upload.id, None)
        if got != digest:
            self._discard_upload(upload)
            raise RegistryError("DIGEST_INVALID", "provided digest did not match uploaded content",
                                detail={"expected": digest, "computed": got})
        self._finish_upload(upload, digest)
        self.link_blob(upload.repo, digest)

    def cancel_upload(self, upload: Upload) -> None:
        self._uploads.pop(upload.id, None)
        self._discard_upload(upload)

    def close(self) -> None:
        for upload in list(self._uploads.values()):
            self.cancel_upload(upload)

    # ------------------------------------------------------------------ manifests and tags
    @abstractmethod
    def _save_revision(self, repo: str, info: ManifestInfo) -> None: ...

    @abstractmethod
    def _load_revision(self, repo: str, digest: str) -> ManifestInfo | None: ...

    @abstractmethod
    def _drop_revision(self, repo: str, digest: str) -> None: ...

    @abstractmethod
    def revisions(self, repo: str) -> list[ManifestInfo]: ...

    @abstractmethod
    def _set_tag(self, repo: str, tag: str, digest: str) -> None: ...

    @abstractmethod
    def _get_tag(self, repo: str, tag: str) -> str | None: ...

    @abstractmethod
    def _drop_tag(self, repo: str, tag: str) -> None: ...

    @abstractmethod
    def tags(self, repo: str) -> list[str]: ...

    @abstractmethod
    def repo_exists(self, repo: str) -> bool: ...

    @abstractmethod
    def repositories(self) -> list[str]: ...

    def put_manifest(self, repo: str, data: bytes, info: ManifestInfo, tags: list[str]) -> None:
        digest = self.put_blob_bytes(data)
        if digest != info.digest:
            raise ValueError(f"manifest info digest {info.digest} is not the sha256 of its bytes ({digest})")
        self.link_blob(repo, digest)
        self._save_revision(repo, info)
        for tag in tags:
            self._set_tag(repo, tag, digest)

    def resolve(self, repo: str, ref: str) -> ManifestInfo | None:
        """The manifest a tag or digest reference names in `repo`."""
        digest = ref if ":" in ref else self._get_tag(repo, ref)
        if digest is None:
            return None
        return self._load_revision(repo, digest)

    def manifest_bytes(self, info: ManifestInfo) -> bytes:
        return bytes(self.read_blob(info.digest, 0, info.size_bytes))

    def delete_manifest(self, repo: str, ref: str) -> bool:
        """By tag: drop the tag. By digest: drop the revision and every tag pointing at it."""
        if ":" not in ref:
            if self._get_tag(repo, ref) is None:
                return False
            self._drop_tag(repo, ref)
            return True
        if self._load_revision(repo, ref) is None:
            return False
        for tag in self.tags(repo):
            if self._get_tag(repo, tag) == ref:
                self._drop_tag(repo, tag)
        self._drop_revision(repo, ref)
        return True

    def referrers(self, repo: str, digest: str) -> list[ManifestInfo]:
        return [m for m in self.revisions(repo) if m.subject == digest]


class MemoryStorage(Storage):
    """Everything in dicts: fast, and gone when the process ends."""

    def __init__(self) -> None:
        super().__init__()
        self._blobs: dict[str, bytes] = {}
        self._links: dict[str, set[str]] = {}
        self._revs: dict[str, dict[str, ManifestInfo]] = {}
        self._tags: dict[str, dict[str, str]] = {}

    def blob_size(self, digest: str) -> int | None:
        b = self._blobs.get(digest)
        return None if b is None else len(b)

    def blob_path(self, digest: str) -> Path | None:
        return None

    def read_blob(self, digest: str, start: int, stop: int) -> bytes | memoryview:
        return memoryview(self._blobs[digest])[start:stop]

    def put_blob_bytes(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self._blobs.setdefault(digest, bytes(data))
        return digest

    def repo_has_blob(self, repo: str, digest: str) -> bool:
        return digest in self._links.get(repo, ()) and digest in self._blobs

    def link_blob(self, repo: str, digest: str) -> None:
        self._links.setdefault(repo, set()).add(digest)

    def unlink_blob(self, repo: str, digest: str) -> bool:
        links = self._links.get(repo, set())
        if digest not in links:
            return False
        links.discard(digest)
        return True

    def _open_upload(self, upload: Upload) -> None:
        upload.handle = bytearray()

    def _write_upload(self, upload: Upload, data: bytes) -> None:
        upload.handle.extend(data)

    def _finish_upload(self, upload: Upload, digest: str) -> None:
        self._blobs.setdefault(digest, bytes(upload.handle))
        upload.handle = None

    def _discard_upload(self, upload: Upload) -> None:
        upload.handle = None

    def _upload_digest(self, upload: Upload, algorithm: str) -> str:
        return f"{algorithm}:{hashlib.new(algorithm, upload.handle).hexdigest()}"

    def _save_revision(self, repo: str, info: ManifestInfo) -> None:
        self._revs.setdefault(repo, {})[info.digest] = info

    def _load_revision(self, repo: str, digest: str) -> ManifestInfo | None:
        return self._revs.get(repo, {}).get(digest)

    def _drop_revision(self, repo: str, digest: str) -> None:
        self._revs.get(repo, {}).pop(digest, None)

    def revisions(self, repo: str) -> list[ManifestInfo]:
        return list(self._revs.get(repo, {}).values())

    def _set_tag(self, repo: str, tag: str, digest: str) -> None:
        self._tags.setdefault(repo, {})[tag] = digest

    def _get_tag(self, repo: str, tag: str) -> str | None:
        return self._tags.get(repo, {}).get(tag)

    def _drop_tag(self, repo: str, tag: str) -> None:
        self._tags.get(repo, {}).pop(tag, None)

    def tags(self, repo: str) -> list[str]:
        return sorted(self._tags.get(repo, {}), key=lambda t: t.encode())

    def repo_exists(self, repo: str) -> bool:
        return repo in self._links or repo in self._revs

    def repositories(self) -> list[str]:
        return sorted(set(self._links) | set(self._revs))
