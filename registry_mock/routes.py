"""Dispatch of `/v2/<name>/...` paths: which handler, which repository, which auth actions (spec §1.2).

Names contain '/', so the suffix (`/manifests/<ref>`, `/blobs/<digest>`, `/blobs/uploads/[<id>]`,
`/tags/list`, `/referrers/<digest>`) is split off with anchored regexes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import blobs, manifests, tags, uploads
from .auth import PULL, PUSH
from .errors import RegistryError

Handler = Callable[..., Awaitable[web.StreamResponse]]
PULL_ONLY = frozenset({PULL})
PUSH_ONLY = frozenset({PUSH})
DELETE_ANY = frozenset({"delete", PUSH})


@dataclass(frozen=True)
class Route:
    endpoint: str
    handler: Handler
    repo: str
    params: dict[str, str]
    needed: frozenset[str]


# (endpoint, path regex, {method: (handler, actions)})
_TABLE: list[tuple[str, re.Pattern[str], dict[str, tuple[Handler, frozenset[str]]]]] = [
    ("upload_start", re.compile(r"^(?P<repo>.+)/blobs/uploads/?$"),
     {"POST": (uploads.start_upload, PUSH_ONLY)}),
    ("upload", re.compile(r"^(?P<repo>.+)/blobs/uploads/(?P<upload_id>[^/]+)$"),
     {"GET": (uploads.upload_status, PUSH_ONLY), "PATCH": (uploads.patch_upload, PUSH_ONLY),
      "PUT": (uploads.put_upload, PUSH_ONLY), "DELETE": (uploads.cancel_upload, PUSH_ONLY)}),
    ("blob", re.compile(r"^(?P<repo>.+)/blobs/(?P<digest>[^/]+)$"),
     {"GET": (blobs.get_blob, PULL_ONLY), "HEAD": (blobs.get_blob, PULL_ONLY),
      "DELETE": (blobs.delete_blob, DELETE_ANY)}),
    ("manifest", re.compile(r"^(?P<repo>.+)/manifests/(?P<ref>[^/]+)$"),
     {"GET": (manifests.get_manifest, PULL_ONLY), "HEAD": (manifests.get_manifest, PULL_ONLY),
      "PUT": (manifests.put_manifest, PUSH_ONLY), "DELETE": (manifests.delete_manifest, DELETE_ANY)}),
    ("tags", re.compile(r"^(?P<repo>.+)/tags/list$"), {"GET": (tags.list_tags, PULL_ONLY)}),
    ("referrers", re.compile(r"^(?P<repo>.+)/referrers/(?P<digest>[^/]+)$"),
     {"GET": (tags.list_referrers, PULL_ONLY)}),
]


def resolve(method: str, tail: str) -> Route:
    """Route for `/v2/<tail>`; RegistryError NAME_UNKNOWN (404) or UNSUPPORTED (405) otherwise."""
    for endpoint, regex, methods in _TABLE:
        m = regex.match(tail)
        if not m:
            continue
        if method not in methods:
            raise RegistryError("UNSUPPORTED", f"method {method} not allowed here",
                                headers={"Allow": ", ".join(sorted(methods))})
        handler, needed = methods[method]
        params: dict[str, Any] = m.groupdict()
        repo = params.pop("repo")
        return Route(endpoint, handler, repo, params, needed)
    raise RegistryError("NAME_UNKNOWN", "no such endpoint", detail={"path": tail[:200]})
