"""Tag listing with `n`/`last` pagination and `Link` (end-8), referrers (end-12) and the catalog."""

from __future__ import annotations

from aiohttp import web

from .errors import RegistryError, name_unknown
from .manifests import OCI_INDEX
from .names import check_digest
from .state import state_of

MAX_PAGE = 10_000


def _page_size(request: web.Request) -> int | None:
    n = request.query.get("n")
    if n is None:
        return None
    if not n.isdigit() or len(n) > 9:
        raise RegistryError("UNSUPPORTED", "n must be a non-negative integer", status=400,
                            detail={"n": n[:50]})
    return min(int(n), MAX_PAGE)


async def list_tags(request: web.Request, repo: str) -> web.Response:
    st = state_of(request)
    if not st.storage.repo_exists(repo):
        raise name_unknown(repo)
    tags = st.storage.tags(repo)
    last = request.query.get("last")
    if last is not None:
        tags = [t for t in tags if t.encode() > last.encode()]
    n = _page_size(request)
    headers = {}
    if n is not None and len(tags) > n:
        tags = tags[:n]
        if n > 0:
            headers["Link"] = f'</v2/{repo}/tags/list?n={n}&last={tags[-1]}>; rel="next"'
    return web.json_response({"name": repo, "tags": tags}, headers=headers)


async def list_referrers(request: web.Request, repo: str, digest: str) -> web.Response:
    st = state_of(request)
    check_digest(digest)
    wanted = request.query.get("artifactType")
    manifests = []
    for info in st.storage.referrers(repo, digest):
        if wanted is not None and info.artifact_type != wanted:
            continue
        d: dict[str, object] = {"mediaType": info.media_type, "size": info.size_bytes, "digest": info.digest}
        if info.artifact_type:
            d["artifactType"] = info.artifact_type
        if info.annotations:
            d["annotations"] = info.annotations
        manifests.append(d)
    headers = {}
    if wanted is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return web.json_response(body, headers=headers, content_type=OCI_INDEX)


async def catalog(request: web.Request) -> web.Response:
    st = state_of(request)
    repos = st.storage.repositories()
    last = request.query.get("last")
    if last is not None:
        repos = [r for r in repos if r > last]
    n = _page_size(request)
    headers = {}
    if n is not None and len(repos) > n:
        repos = repos[:n]
        if n > 0:
            headers["Link"] = f'</v2/_catalog?n={n}&last={repos[-1]}>; rel="next"'
    return web.json_response({"repositories": repos}, headers=headers)
