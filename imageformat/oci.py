"""The OCI image layout on disk (image-spec `image-layout.md`), read strictly, written atomically.

A layout is `oci-layout`, `index.json` and `blobs/<alg>/<hex>`. Tags are index entries with the
`org.opencontainers.image.ref.name` annotation (what `skopeo copy oci:DIR:TAG` reads). Every blob
is written to a temporary file in the layout and renamed into place; `index.json` is replaced
last, so a reader never sees a manifest whose blobs are missing. Anything malformed raises
`LayoutError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from imageformat.digest import is_digest, parse_digest
from imageformat.errors import ContentDigestError, LayoutError

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"
MAX_JSON_BYTES = 16 << 20  # manifests/configs/index larger than this are refused


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_digest(self.digest):
            raise LayoutError(f"descriptor digest {self.digest[:80]!r} is not a valid digest")
        if self.size < 0:
            raise LayoutError(f"descriptor size (={self.size}) must be >= 0")
        if not self.media_type:
            raise LayoutError("descriptor mediaType must not be empty")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise LayoutError(f"{where}: a descriptor must be a JSON object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise LayoutError(f"{where}: mediaType missing or not a string")
        if not isinstance(digest, str) or not is_digest(digest):
            raise LayoutError(f"{where}: digest {str(digest)[:80]!r} is not a valid digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise LayoutError(f"{where}: size {size!r} is not a non-negative integer")
        ann = obj.get("annotations", {})
        if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in ann.items()):
            raise LayoutError(f"{where}: annotations must map strings to strings")
        return cls(media_type=media_type, digest=digest, size=size, annotations=ann)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": self.config.to_json(),
            "layers": [d.to_json() for d in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Manifest:
        if not isinstance(obj, dict) or obj.get("schemaVersion") != 2:
            raise LayoutError(f"{where}: not an image manifest with schemaVersion 2")
        if obj.get("mediaType", MEDIA_TYPE_MANIFEST) != MEDIA_TYPE_MANIFEST:
            raise LayoutError(f"{where}: mediaType {obj.get('mediaType')!r} is not {MEDIA_TYPE_MANIFEST}")
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise LayoutError(f"{where}: layers must be a list")
        return cls(
            config=Descriptor.from_json(obj.get("config"), f"{where} config"),
            layers=tuple(Descriptor.from_json(d, f"{where} layer {i}") for i, d in enumerate(layers)),
            annotations=obj.get("annotations") or {},
        )


@dataclass(frozen=True, kw_only=True)
class Image:
    """A resolved image: the manifest's descriptor, the manifest and its config JSON."""

    tag: str | None
    manifest_descriptor: Descriptor
    manifest: Manifest
    config: Mapping[str, Any]

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.manifest.layers

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config["rootfs"]["diff_ids"])


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _load_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LayoutError(f"{where}: invalid JSON ({e})") from None


def _validate_config(cfg: Any, n_layers: int, where: str) -> None:
    if not isinstance(cfg, dict):
        raise LayoutError(f"{where}: config must be a JSON object")
    rootfs = cfg.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise LayoutError(f"{where}: rootfs.type must be 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and is_digest(d) for d in diff_ids):
        raise LayoutError(f"{where}: rootfs.diff_ids must be a list of digests")
    if len(diff_ids) != n_layers:
        raise LayoutError(f"{where}: {len(diff_ids)} diff_ids for {n_layers} layers")


class OciLayout:
    """An OCI image layout directory. `create` makes one; `open` checks the skeleton."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path | str) -> OciLayout:
        """A new empty layout, or the existing one at `root` (which must be valid)."""
        root = Path(root)
        if (root / "oci-layout").exists():
            return cls.open(root)
        if root.exists() and any(root.iterdir()):
            raise LayoutError(f"{root}: exists, is not empty and is not an OCI layout")
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout = cls(root)
        layout._write_atomic(root / "oci-layout", canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
        layout._write_index([])
        return layout

    @classmethod
    def open(cls, root: Path | str) -> OciLayout:
        root = Path(root)
        marker = root / "oci-layout"
        if not marker.is_file():
            raise LayoutError(f"{root}: no oci-layout file (not an OCI image layout)")
        obj = _load_json(marker.read_bytes()[:MAX_JSON_BYTES], str(marker))
        if not isinstance(obj, dict) or obj.get("imageLayoutVersion") != LAYOUT_VERSION:
            raise LayoutError(f"{marker}: imageLayoutVersion must be {LAYOUT_VERSION!r}")
        if not (root / "blobs").is_dir():
            raise LayoutError(f"{root}: no blobs/ directory")
        layout = cls(root)
        layout.index_entries()  # validates index.json
        return layout

    # ---- blobs ---------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        try:
            algo, hexpart = parse_digest(digest)
        except ValueError as e:
            raise LayoutError(str(e)) from None
        return self.root / "blobs" / algo / hexpart

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int:
        path = self.blob_path(digest)
        if not path.is_file():
            raise LayoutError(f"{self.root}: blob {digest} is missing")
        return path.stat().st_size

    @contextmanager
    def open_blob(self, descriptor: Descriptor) -> Iterator[BinaryIO]:
        """The blob's bytes, after checking it exists and has the descriptor's size."""
        size = self.blob_size(descriptor.digest)
        if size != descriptor.size:
            raise LayoutError(f"blob {descriptor.digest}: {size} bytes on disk, "
                              f"descriptor says {descriptor.size}")
        with open(self.blob_path(descriptor.digest), "rb") as f:
            yield f

    def read_blob(self, descriptor: Descriptor, *, max_bytes: int = MAX_JSON_BYTES) -> bytes:
        """A small blob (manifest, config), verified against its digest."""
        if descriptor.size > max_bytes:
            raise LayoutError(f"blob {descriptor.digest}: {descriptor.size} bytes exceeds {max_bytes}")
        with self.open_blob(descriptor) as f:
            data = f.read(descriptor.size + 1)
        algo, hexpart = parse_digest(descriptor.digest)
        if hashlib.new(algo, data).hexdigest() != hexpart:
            raise ContentDigestError(f"blob {descriptor.digest}: content does not match its digest")
        return data

    def write_blob(self, data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(digest):
            self._write_atomic(self.blob_path(digest), data)
        return digest, len(data)

    @contextmanager
    def new_blob(self) -> Iterator[tuple[BinaryIO, list[str]]]:
        """Write a blob whose digest is known only at the end.

        Yields (file, slot): write the bytes, then put the digest in `slot` (a one-element
        list); on exit the file is renamed to its digest path. Nothing is kept on error.
        """
        directory = self.root / "blobs" / "sha256"
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        slot: list[str] = []
        try:
            with os.fdopen(fd, "w+b") as f:
                yield f, slot
                f.flush()
                os.fsync(f.fileno())
            if len(slot) != 1:
                raise LayoutError("new_blob: the writer did not name the blob's digest")
            os.replace(tmp, self.blob_path(slot[0]))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # ---- index, manifests, configs -----------------------------------------------------
    def index_entries(self) -> list[Descriptor]:
        path = self.root / "index.json"
        if not path.is_file():
            raise LayoutError(f"{self.root}: no index.json")
        obj = _load_json(path.read_bytes()[: MAX_JSON_BYTES + 1], str(path))
        if not isinstance(obj, dict) or obj.get("schemaVersion") != 2:
            raise LayoutError(f"{path}: schemaVersion must be 2")
        manifests = obj.get("manifests")
        if not isinstance(manifests, list):
            raise LayoutError(f"{path}: manifests must be a list")
        return [Descriptor.from_json(d, f"{path} manifests[{i}]") for i, d in enumerate(manifests)]

    def tags(self) -> dict[str, Descriptor]:
        return {d.annotations[REF_NAME]: d for d in self.index_entries() if REF_NAME in d.annotations}

    def resolve(self, tag: str | None = None) -> Image:
        """The image tagged `tag`, or the only manifest in the index when tag is None."""
        entries = self.index_entries()
        if tag is None:
            if len(entries) != 1:
                raise LayoutError(f"{self.root}: {len(entries)} manifests in index.json; name a tag")
            desc = entries[0]
        else:
            found = [d for d in entries if d.annotations.get(REF_NAME) == tag]
            if not found:
                raise LayoutError(f"{self.root}: no image tagged {tag!r} (tags: {sorted(self.tags())})")
            desc = found[-1]
        if desc.media_type != MEDIA_TYPE_MANIFEST:
            raise LayoutError(f"{self.root}: {desc.digest} has mediaType {desc.media_type}, "
                              "expected an image manifest")
        where = f"manifest {desc.digest}"
        manifest = Manifest.from_json(_load_json(self.read_blob(desc), where), where)
        if manifest.config.media_type != MEDIA_TYPE_CONFIG:
            raise LayoutError(f"{where}: config mediaType {manifest.config.media_type!r} "
                              f"is not {MEDIA_TYPE_CONFIG}")
        config = _load_json(self.read_blob(manifest.config), f"config {manifest.config.digest}")
        _validate_config(config, len(manifest.layers), f"config {manifest.config.digest}")
        return Image(tag=desc.annotations.get(REF_NAME, tag), manifest_descriptor=desc,
                     manifest=manifest, config=config)

    def write_image(self, *, layers: Sequence[Descriptor], config: Mapping[str, Any], tag: str,
                    manifest_annotations: Mapping[str, str] | None = None) -> Image:
        """Write config and manifest (layer blobs must be in place) and point `tag` at them."""
        _validate_config(config, len(layers), "new config")
        for d in layers:
            if self.blob_size(d.digest) != d.size:
                raise LayoutError(f"layer {d.digest}: blob size differs from the descriptor's {d.size}")
        cdigest, csize = self.write_blob(canonical_json(config))
        manifest = Manifest(
            config=Descriptor(media_type=MEDIA_TYPE_CONFIG, digest=cdigest, size=csize),
            layers=tuple(layers),
            annotations=manifest_annotations or {},
        )
        mdigest, msize = self.write_blob(json.dumps(manifest.to_json(), indent=2).encode())
        mdesc = Descriptor(media_type=MEDIA_TYPE_MANIFEST, digest=mdigest, size=msize,
                           annotations={REF_NAME: tag})
        kept = [d for d in self.index_entries() if d.annotations.get(REF_NAME) != tag]
        self._write_index([*kept, mdesc])
        return Image(tag=tag, manifest_descriptor=mdesc, manifest=manifest, config=dict(config))

    # ---- helpers -------------------------------------------------------------------------
    def _write_index(self, entries: Sequence[Descriptor]) -> None:
        obj = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [d.to_json() for d in entries]}
        self._write_atomic(self.root / "index.json", json.dumps(obj, indent=2).encode())

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def new_config(diff_ids: Sequence[str], *, history: Sequence[Mapping[str, Any]] = (),
               architecture: str = "amd64", os_name: str = "linux") -> dict[str, Any]:
    """A minimal, deterministic image config (no creation time)."""
    return {
        "architecture": architecture,
        "os": os_name,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [dict(h) for h in history],
    }


__all__ = [
    "LAYOUT_VERSION",
    "MEDIA_TYPE_CONFIG",
    "MEDIA_TYPE_INDEX",
    "MEDIA_TYPE_MANIFEST",
    "REF_NAME",
    "Descriptor",
    "Image",
    "Manifest",
    "OciLayout",
    "canonical_json",
    "new_config",
]
