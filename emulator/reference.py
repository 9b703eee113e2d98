"""Image references: `HOST[:PORT]/REPO[:TAG]` or `HOST[:PORT]/REPO@sha256:…`.

The host is mandatory (there is no default registry: the lab never talks to the Internet).
Plain HTTP is used for loopback hosts; any other host needs `insecure=True` on the client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emulator.errors import BadReferenceError
from imageformat.digest import is_digest

_REPO_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageReference:
    host: str  # host[:port] as written
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.tag is None and self.digest is None:
            raise BadReferenceError("a reference needs a tag or a digest")

    @property
    def hostname(self) -> str:
        h = self.host
        if h.startswith("["):
            return h[: h.index("]") + 1]
        return h.rsplit(":", 1)[0] if ":" in h else h

    @property
    def is_loopback(self) -> bool:
        return self.hostname in LOOPBACK_HOSTS

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest if pinned, else the tag."""
        return self.digest or self.tag or ""

    def __str__(self) -> str:
        s = f"{self.host}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def parse_reference(text: str) -> ImageReference:
    """Parse `HOST[:PORT]/REPO[:TAG][@DIGEST]`; raise BadReferenceError naming what is wrong."""
    raw = text.strip()
    for prefix in ("docker://", "http://", "https://"):
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
    if "/" not in raw:
        raise BadReferenceError(f"reference {text!r} has no registry host (expected HOST[:PORT]/REPO:TAG)")
    host, rest = raw.split("/", 1)
    if not _HOST.match(host) or not ("." in host or ":" in host or host == "localhost"):
        raise BadReferenceError(f"reference {text!r}: {host!r} is not a registry host[:port]")
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not is_digest(digest):
            raise BadReferenceError(f"reference {text!r}: {digest!r} is not a sha256/sha512 digest")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.match(tag):
            raise BadReferenceError(f"reference {text!r}: tag {tag!r} is invalid")
    if not rest or not all(_REPO_COMPONENT.match(c) for c in rest.split("/")):
        raise BadReferenceError(
            f"reference {text!r}: repository {rest!r} must be lowercase components separated by '/'"
        )
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(host=host, repository=rest, tag=tag, digest=digest)
