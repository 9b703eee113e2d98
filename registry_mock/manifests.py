"""Manifest GET/HEAD/PUT/DELETE handlers (OCI end-3, end-7, end-9): exact bytes, stored media type,
digest = sha256 of the bytes, per-repository blob checks, `subject` for the referrers API."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from .errors import RegistryError, manifest_unknown
from .names import is_valid_tag
from .state import ctx_of, state_of
from .storage import ManifestInfo
from .transfer import send_body

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})


def _is_digest_ref(ref: str) -> bool:
    return ":" in ref


def _resolve(request: web.Request, repo: str, ref: str) -> ManifestInfo:
    st = state_of(request)
    # Invalid references (neither tag nor digest) are simply unknown: conformance v1.1.1 wants 404.
    if _is_digest_ref(ref):
        from imageformat.digest import is_digest

        if not is_digest(ref):
            raise manifest_unknown(ref)
    elif not is_valid_tag(ref):
        raise manifest_unknown(ref)
    info = st.storage.resolve(repo, ref)
    if info is None:
        raise manifest_unknown(ref)
    return info


async def get_manifest(request: web.Request, repo: str, ref: str) -> web.StreamResponse:
    st = state_of(request)
    ctx = ctx_of(request)
    info = _resolve(request, repo, ref)
    ctx.digest = info.digest
    headers = {"Content-Type": info.media_type, "Docker-Content-Digest": info.digest,
               "ETag": f'"{info.digest}"'}
    if request.method == "HEAD":
        headers["Content-Length"] = str(info.size_bytes)
        return web.Response(status=200, headers=headers)
    data = st.storage.manifest_bytes(info)
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = len(data)
    ctx.bytes_sent = await send_body(request, response, [data], source=None, link=st.link)
    await response.write_eof()
    return response


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise RegistryError("MANIFEST_INVALID", f"manifest larger than {limit} bytes", status=413)
    buf = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        buf += chunk
        if len(buf) > limit:
            raise RegistryError("MANIFEST_INVALID", f"manifest larger than {limit} bytes", status=413)
    return bytes(buf)


def _invalid(msg: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", msg)


def _check_references(request: web.Request, repo: str, media_type: str, doc: dict[str, Any]) -> None:
    st = state_of(request)
    if media_type in INDEX_TYPES:
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise _invalid("an index needs a manifests list")
        for d in children:
            digest = d.get("digest") if isinstance(d, dict) else None
            if not isinstance(digest, str) or st.storage.resolve(repo, digest) is None:
                raise RegistryError("MANIFEST_BLOB_UNKNOWN", "manifest references an unknown manifest",
                                    detail={"digest": str(digest)[:100]})
        return
    descriptors = [doc.get("config"), *(doc.get("layers") or [])]
    for d in descriptors:
        digest = d.get("digest") if isinstance(d, dict) else None
        if not isinstance(digest, str):
            raise _invalid("descriptor without digest")
        if not st.storage.repo_has_blob(repo, digest):
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", "blob unknown to registry",
                                detail={"digest": digest[:100]})


async def put_manifest(request: web.Request, repo: str, ref: str) -> web.Response:
    st = state_of(request)
    ctx = ctx_of(request)
    if not _is_digest_ref(ref) and not is_valid_tag(ref):
        raise RegistryError("MANIFEST_INVALID", "invalid tag", detail={"tag": ref[:200]})
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    data = await _read_limited(request, st.spec.max_manifest_bytes)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest is not a JSON object")
    declared = doc.get("mediaType")
    if not media_type and isinstance(declared, str):
        media_type = declared
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type[:100]!r}")
    if declared is not None and declared != media_type:
        raise _invalid(f"mediaType {str(declared)[:100]!r} does not match Content-Type {media_type!r}")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if _is_digest_ref(ref) and ref != digest:
        raise RegistryError("DIGEST_INVALID", "manifest digest does not match its content",
                            detail={"expected": ref[:200], "computed": digest})
    _check_references(request, repo, media_type, doc)
    subject = doc.get("subject", {}).get("digest") if isinstance(doc.get("subject"), dict) else None
    config = doc.get("config")
    artifact_type = doc.get("artifactType")
    if not artifact_type and isinstance(config, dict) and media_type not in INDEX_TYPES:
        artifact_type = config.get("mediaType")
    annotations = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else None
    info = ManifestInfo(digest=digest, media_type=media_type, size_bytes=len(data),
                        subject=subject if isinstance(subject, str) else None,
                        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
                        annotations=annotations)
    tags = [] if _is_digest_ref(ref) else [ref]
    extra = [t for t in request.query.getall("tag", []) if is_valid_tag(t)]
    st.storage.put_manifest(repo, data, info, tags + extra)
    ctx.digest = digest
    headers = {"Location": f"/v2/{repo}/manifests/{digest}", "Docker-Content-Digest": digest,
               "Content-Length": "0"}
    if info.subject:
        headers["OCI-Subject"] = info.subject
    response = web.Response(status=201, headers=headers)
    for t in extra:
        response.headers.add("OCI-Tag", t)
    return response


async def delete_manifest(request: web.Request, repo: str, ref: str) -> web.Response:
    st = state_of(request)
    if not st.spec.delete_enabled:
        raise RegistryError("UNSUPPORTED", "deletes are disabled")
    _resolve(request, repo, ref)
    st.storage.delete_manifest(repo, ref)
    return web.Response(status=202, headers={"Content-Length": "0"})
