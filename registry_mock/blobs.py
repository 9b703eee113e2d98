"""Blob GET/HEAD/DELETE handlers (OCI end-2, end-10) with RFC 9110 Range serving and blob-level faults,
and the unauthenticated redirect target `/_blobs/<digest>` (signed when auth is on)."""

from __future__ import annotations

from aiohttp import web

from imageformat.byterange import ByteRange, merge_ranges

from .config import FaultKind
from .errors import RegistryError, blob_unknown
from .names import check_digest
from .ranges import RangeOutcome, RangePlan, content_range, count_range_specs, multipart_layout, plan_ranges
from .state import ctx_of, state_of
from .transfer import SENDFILE_MIN_BYTES, BlobSource, PacedResponse, Piece, send_body

OCTET = "application/octet-stream"

def _blob_headers(digest: str) -> dict[str, str]:
    return {
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Content-Type": OCTET,
        "Cache-Control": "max-age=31536000",
    }


def _external_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def get_blob(request: web.Request, repo: str, digest: str) -> web.StreamResponse:
    st = state_of(request)
    ctx = ctx_of(request)
    check_digest(digest)
    size = st.storage.repo_blob_size(repo, digest)
    if size is None:
        raise blob_unknown(digest)
    if FaultKind.REDIRECT in ctx.faults:
        query = st.auth.sign_blob_url(digest) if st.auth.enabled else ""
        location = f"{_external_base(request)}/_blobs/{digest}" + (f"?{query}" if query else "")
        return web.Response(status=307, headers={"Location": location, "Docker-Content-Digest": digest})
    return await serve_blob(request, digest, size)


async def get_redirected_blob(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    ctx = ctx_of(request)
    ctx.endpoint = "redirect_blob"
    digest = check_digest(request.match_info["digest"])
    ctx.digest = digest
    if not st.auth.check_blob_url(digest, request.query.get("exp"), request.query.get("sig")):
        raise RegistryError("DENIED", "invalid or expired blob URL signature")
    size = st.storage.blob_size(digest)
    if size is None:
        raise blob_unknown(digest)
    return await serve_blob(request, digest, size)


def _plan(request: web.Request, size: int, digest: str) -> RangePlan:
    st = state_of(request)
    ctx = ctx_of(request)
    header = request.headers.get("Range")
    ctx.range_header = header[:256] if header else None
    ctx.range_header_bytes = len(header) if header else 0
    if header is None:
        return plan_ranges(None, size)
    n_specs = count_range_specs(header)
    ctx.ranges = n_specs
    faults = ctx.faults
    if FaultKind.RANGE_IGNORE in faults:
        return plan_ranges(None, size)
    if FaultKind.RANGE_416 in faults:
        return RangePlan(RangeOutcome.UNSATISFIABLE, requested=n_specs)
    if FaultKind.MULTIRANGE_400 in faults and n_specs > 1:
        return RangePlan(RangeOutcome.TOO_MANY, requested=n_specs)
    plan = plan_ranges(header, size, etag=f'"{digest}"', if_range=request.headers.get("If-Range"),
                       max_ranges=st.spec.max_ranges)
    if FaultKind.RANGE_MERGE in faults and plan.outcome is RangeOutcome.PARTIAL:
        plan = RangePlan(RangeOutcome.PARTIAL, tuple(merge_ranges(plan.ranges)), plan.requested)
    return plan


async def serve_blob(request: web.Request, digest: str, size: int) -> web.StreamResponse:
    """Answer GET/HEAD for a blob of `size` bytes the caller is allowed to read."""
    st = state_of(request)
    ctx = ctx_of(request)
    headers = _blob_headers(digest)
    if request.method == "HEAD":  # RFC 9110 §14.2: Range is ignored on HEAD
        headers["Content-Length"] = str(size)
        return web.Response(status=200, headers=headers)
    plan = _plan(request, size, digest)
    pieces: list[Piece]
    if plan.outcome is RangeOutcome.TOO_MANY:
        raise RegistryError("RANGE_INVALID", f"too many ranges (max {st.spec.max_ranges})", status=400,
                            detail={"ranges": plan.requested, "max_ranges": st.spec.max_ranges})
    if plan.outcome is RangeOutcome.UNSATISFIABLE:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})

    if plan.outcome is RangeOutcome.FULL:
        status, pieces = 200, ([ByteRange(0, size)] if size else [])
        length = size
    elif not plan.multipart:
        r = plan.ranges[0]
        status, pieces, length = 206, [r], r.length
        headers["Content-Range"] = content_range(r, size)
    else:
        layout = multipart_layout(plan.ranges, size, OCTET)
        status, length = 206, layout.content_length
        headers["Content-Type"] = layout.content_type
        pieces = []
        for head, r in layout.parts:
            pieces += [head, r]
        pieces.append(layout.trailer)
    link = st.link  # one link for the whole response, even if it is reshaped meanwhile
    paced = length > 0 and (link.spec.shaped or length < SENDFILE_MIN_BYTES)
    response = (PacedResponse if paced else web.StreamResponse)(status=status, headers=headers)
    response.content_length = length
    ctx.bytes_sent = await send_body(request, response, pieces, source=BlobSource(st.storage, digest),
                                     link=link, faults=ctx.faults)
    await response.write_eof()
    return response


async def delete_blob(request: web.Request, repo: str, digest: str) -> web.Response:
    st = state_of(request)
    check_digest(digest)
    if not st.spec.delete_enabled:
        raise RegistryError("UNSUPPORTED", "deletes are disabled")
    if not st.storage.unlink_blob(repo, digest):
        raise blob_unknown(digest)
    return web.Response(status=202, headers={"Content-Length": "0"})
