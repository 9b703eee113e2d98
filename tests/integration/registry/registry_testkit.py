"""Push helpers for registry_mock HTTP tests (imported by module name: this directory is on sys.path)."""

from __future__ import annotations

import hashlib
import json

import aiohttp

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def push_blob(
    http: aiohttp.ClientSession, url: str, repo: str, data: bytes, headers: dict[str, str] | None = None
) -> str:
    d = digest_of(data)
    async with http.post(f"{url}/v2/{repo}/blobs/uploads/?digest={d}", data=data, headers=headers) as r:
        assert r.status == 201, await r.text()
    return d


def image_manifest(
    config_digest: str, config_size: int, layers: list[tuple[str, int]], **extra: object
) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}
                for d, n in layers
            ],
            **extra,
        }
    ).encode()


async def push_image(
    http: aiohttp.ClientSession,
    url: str,
    repo: str,
    tag: str,
    layer: bytes,
    headers: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Push config + one layer + manifest; return (manifest digest, layer digest)."""
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    cd = await push_blob(http, url, repo, cfg, headers)
    ld = await push_blob(http, url, repo, layer, headers)
    man = image_manifest(cd, len(cfg), [(ld, len(layer))])
    async with http.put(
        f"{url}/v2/{repo}/manifests/{tag}",
        data=man,
        headers={"Content-Type": OCI_MANIFEST, **(headers or {})},
    ) as r:
        assert r.status == 201, await r.text()
        return r.headers["Docker-Content-Digest"], ld
