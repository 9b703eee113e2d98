"""Test-only helpers: small OCI images from file trees, Debian's docker-registry, skopeo pushes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port

FileSpec = bytes | tuple[str, str]  # content, or ("symlink"|"hardlink"|"dir", target)


def make_tar(files: Mapping[str, FileSpec], *, mtime: int = 1_700_000_000) -> bytes:
    """A PAX tar of the given tree, without record padding (skopeo 1.9.3 refuses padded tars)."""
    buf = io.BytesIO()
    tf = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
    dirs = sorted({str(Path(p).parent) for p in files if "/" in p})
    seen: set[str] = set()
    for d in dirs:
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in seen and sub not in files:
                seen.add(sub)
                ti = tarfile.TarInfo(sub)
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
                tf.addfile(ti)
    for name, spec in files.items():
        ti = tarfile.TarInfo(name)
        ti.mtime = mtime
        if isinstance(spec, tuple):
            kind, target = spec
            ti.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE}[kind]
            ti.linkname = target if kind != "dir" else ""
            ti.mode = 0o777 if kind == "symlink" else 0o755
            tf.addfile(ti)
        else:
            ti.size, ti.mode = len(spec), 0o644
            tf.addfile(ti, io.BytesIO(spec))
    end = tf.offset
    tf.close()
    return buf.getvalue()[: end + 1024]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_oci_layout(root: Path, layer_tars: list[bytes], tag: str = "latest") -> None:
    """A one-platform OCI layout with gzip layers (skopeo recompresses them on copy)."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = _sha(data)
        (blobs / d.split(":")[1]).write_bytes(data)
        return d

    layers, diff_ids = [], []
    for t in layer_tars:
        gz = gzip.compress(t, mtime=0)
        layers.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)}
        )
        diff_ids.append(_sha(t))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    md = put(manifest)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": md,
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": tag},
                    }
                ],
            }
        )
    )


def skopeo_push(layout: Path, tag: str, dest: str, *, compress_format: str | None = "zstd:chunked") -> None:
    cmd = ["skopeo", "copy", "--dest-tls-verify=false"]
    if compress_format:
        cmd += ["--dest-compress-format", compress_format]
    cmd += [f"oci:{layout}:{tag}", f"docker://{dest}"]
    for _attempt in range(3):  # gen-(a) writer fails intermittently on some tars (formats.md §1.9)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            return
    raise RuntimeError(f"skopeo copy failed: {r.stderr.strip()}")


@dataclass(frozen=True)
class RunningRegistry:
    host: str  # 127.0.0.1:PORT
    root: Path


@contextmanager
def docker_registry(root: Path) -> Iterator[RunningRegistry]:
    """Debian's docker-registry (distribution 2.8) on a free loopback port, filesystem storage."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "config.yml"
    cfg.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
    )
    try:
        import socket

        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not start") from None
                time.sleep(0.05)
        yield RunningRegistry(host=f"127.0.0.1:{port}", root=root)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
