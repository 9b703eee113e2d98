"""Validation of repository names, tags, digests, upload ids and upload Content-Range (registry.md §1.1)."""

from __future__ import annotations

import re

from imageformat.digest import is_digest

from .errors import RegistryError

NAME_RE = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
UPLOAD_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{8,64}$")
_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d{1,18})-(\d{1,18})(?:/(\d{1,18}|\*))?$")
MAX_NAME_LEN = 255


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LEN and bool(NAME_RE.match(name))


def is_valid_tag(tag: str) -> bool:
    return bool(TAG_RE.match(tag))


def check_name(name: str) -> str:
    """Return `name` or raise NAME_INVALID (400). The regex also excludes `..`, `//` and upper case."""
    if not is_valid_name(name):
        raise RegistryError("NAME_INVALID", "invalid repository name", detail={"name": name[:300]})
    return name


def check_digest(digest: str) -> str:
    if not is_digest(digest):
        raise RegistryError("DIGEST_INVALID", "invalid digest", detail={"digest": digest[:300]})
    return digest


def check_upload_id(upload_id: str) -> str:
    if not UPLOAD_ID_RE.match(upload_id):
        raise RegistryError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown", detail={"id": upload_id[:100]})
    return upload_id


def parse_upload_content_range(value: str) -> tuple[int, int]:
    """Parse an upload chunk's `Content-Range` (`0-9`, `bytes 0-9/10`, `bytes=0-9/*`): inclusive (start, end).

    Raises RegistryError(RANGE_INVALID) for anything else or end < start.
    """
    m = _CONTENT_RANGE_RE.match(value.strip())
    if not m:
        raise RegistryError("RANGE_INVALID", "invalid Content-Range", detail={"content-range": value[:100]})
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise RegistryError("RANGE_INVALID", "Content-Range end before start",
                            detail={"content-range": value[:100]})
    return start, end
