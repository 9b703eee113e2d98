"""Registry errors: OCI distribution-spec JSON error codes with their HTTP statuses (spec §1.6)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

# code -> HTTP status, as distribution registers them (registry.md §1.6).
STATUS_BY_CODE: dict[str, int] = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
    "RANGE_INVALID": 416,
    "UNAVAILABLE": 503,
}


class RegistryConfigError(ValueError):
    """A registry configuration (flags, TOML profile, fault spec, users file) is invalid."""


class RegistryError(Exception):
    """An error the registry answers with the spec's JSON body: {"errors":[{code,message,detail}]}."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if code not in STATUS_BY_CODE:
            raise ValueError(f"unknown registry error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS_BY_CODE[code]
        self.detail = detail
        self.headers = dict(headers or {})

    def to_response(self, *, head: bool = False) -> web.Response:
        body = json.dumps(
            {"errors": [{"code": self.code, "message": self.message, "detail": self.detail}]}
        ).encode()
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        headers["Content-Type"] = "application/json"
        if head:
            headers["Content-Length"] = str(len(body))
            return web.Response(status=self.status, headers=headers)
        return web.Response(status=self.status, body=body, headers=headers)


def blob_unknown(digest: str) -> RegistryError:
    return RegistryError("BLOB_UNKNOWN", "blob unknown to registry", detail={"digest": digest})


def manifest_unknown(ref: str) -> RegistryError:
    return RegistryError("MANIFEST_UNKNOWN", "manifest unknown", detail={"reference": ref})


def name_unknown(name: str) -> RegistryError:
    return RegistryError("NAME_UNKNOWN", "repository name not known to registry", detail={"name": name})


def upload_unknown(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", detail={"id": upload_id})
