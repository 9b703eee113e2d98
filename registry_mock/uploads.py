"""Blob upload handlers (OCI end-4..6, end-11, end-13, end-14): monolithic POST, streamed and chunked PATCH,
closing PUT with digest verification, upload status, cancel, and cross-repository mount.
Bodies stream to storage while hashing; nothing is read whole into memory."""

from __future__ import annotations

from aiohttp import web

from .errors import RegistryError
from .names import check_digest, check_name, check_upload_id, parse_upload_content_range
from .state import ctx_of, state_of
from .storage import Upload

READ_CHUNK = 1 << 20


def _location(repo: str, upload: Upload) -> str:
    return f"/v2/{repo}/blobs/uploads/{upload.id}"


def _range_value(upload: Upload) -> str:
    return f"0-{max(upload.size_bytes - 1, 0)}"


def _session_headers(repo: str, upload: Upload) -> dict[str, str]:
    return {"Location": _location(repo, upload), "Range": _range_value(upload),
            "Docker-Upload-UUID": upload.id, "Content-Length": "0"}


def _created(repo: str, digest: str) -> web.Response:
    return web.Response(status=201, headers={"Location": f"/v2/{repo}/blobs/{digest}",
                                             "Docker-Content-Digest": digest, "Content-Length": "0"})


async def _stream_into(request: web.Request, upload: Upload) -> int:
    """Append the request body to the upload; check Content-Range/Content-Length; return bytes received."""
    st = state_of(request)
    cr = request.headers.get("Content-Range")
    length = request.content_length
    if cr is not None:
        start, end = parse_upload_content_range(cr)
        if start != upload.size_bytes:
            raise RegistryError("RANGE_INVALID", "chunk out of order",
                                detail={"expected_start": upload.size_bytes},
                                headers=_session_headers(upload.repo, upload))
        if length is not None and length != end - start + 1:
            raise RegistryError("SIZE_INVALID", "Content-Length does not match Content-Range",
                                detail={"content-length": length, "content-range": cr})
    if upload.busy:
        raise RegistryError("RANGE_INVALID", "another request is writing to this upload",
                            headers=_session_headers(upload.repo, upload))
    upload.busy = True
    received = 0
    try:
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            st.storage.write_upload(upload, chunk)
            received += len(chunk)
    finally:
        upload.busy = False
    if length is not None and received != length:  # aiohttp normally catches this first
        raise RegistryError("SIZE_INVALID", "body shorter than Content-Length")
    return received


async def start_upload(request: web.Request, repo: str) -> web.Response:
    st = state_of(request)
    q = request.query
    mount, source = q.get("mount"), q.get("from")
    if mount is not None:
        check_digest(mount)
        if source is not None and _may_mount(request, source, mount):
            st.storage.link_blob(repo, mount)
            ctx_of(request).digest = mount
            return _created(repo, mount)
    digest = q.get("digest")
    if digest is not None:
        check_digest(digest)
    upload = st.storage.new_upload(repo)
    if digest is not None:  # monolithic POST with the body
        try:
            await _stream_into(request, upload)
        except BaseException:
            st.storage.cancel_upload(upload)
            raise
        st.storage.commit_upload(upload, digest)
        ctx_of(request).digest = digest
        return _created(repo, digest)
    headers = _session_headers(repo, upload)
    headers["OCI-Chunk-Min-Length"] = "0"
    return web.Response(status=202, headers=headers)


def _may_mount(request: web.Request, source: str, digest: str) -> bool:
    st = state_of(request)
    try:
        check_name(source)
    except RegistryError:
        return False
    if not st.storage.repo_has_blob(source, digest):
        return False
    if st.auth.enabled:
        granted = st.auth.granted(request.headers.get("Authorization"), source) or frozenset()
        return bool(granted & {"pull", "*"})
    return True


async def patch_upload(request: web.Request, repo: str, upload_id: str) -> web.Response:
    st = state_of(request)
    upload = st.storage.get_upload(repo, check_upload_id(upload_id))
    await _stream_into(request, upload)
    return web.Response(status=202, headers=_session_headers(repo, upload))


async def put_upload(request: web.Request, repo: str, upload_id: str) -> web.Response:
    st = state_of(request)
    upload = st.storage.get_upload(repo, check_upload_id(upload_id))
    digest = request.query.get("digest")
    if digest is None:
        raise RegistryError("DIGEST_INVALID", "digest query parameter is required")
    check_digest(digest)
    if request.content_length or request.headers.get("Content-Range") or request.headers.get(
            "Transfer-Encoding", "").lower() == "chunked":
        await _stream_into(request, upload)
    st.storage.commit_upload(upload, digest)
    ctx_of(request).digest = digest
    return _created(repo, digest)


async def upload_status(request: web.Request, repo: str, upload_id: str) -> web.Response:
    st = state_of(request)
    upload = st.storage.get_upload(repo, check_upload_id(upload_id))
    return web.Response(status=204, headers=_session_headers(repo, upload))


async def cancel_upload(request: web.Request, repo: str, upload_id: str) -> web.Response:
    st = state_of(request)
    upload = st.storage.get_upload(repo, check_upload_id(upload_id))
    st.storage.cancel_upload(upload)
    return web.Response(status=204)
