"""Paths of an Additional Layer Store mounted with `:ref` (formats spec section 4.2).

    <store>/<base64(image reference)>/<digest>/diff/...   the layer's tree (overlay lower dir)
    <store>/<base64(image reference)>/<digest>/info       JSON layer record
    <store>/<base64(image reference)>/<digest>/blob       the compressed layer blob
    <store>/<base64(image reference)>/<digest>/use        never exists; creating it = "I use it"

The reference is standard base64 with padding of the string c/image passes; podman 4.3.1
passes `HOST[:PORT]/REPO:TAG` (observed). `<digest>` is the compressed layer digest
(containers/storage <= 1.53) or the layer's TOC digest (>= 1.54).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
LAYER_FILES = ("diff", "info", "blob")
USE = "use"


class Kind(StrEnum):
    ROOT = "root"
    IMAGE = "image"  # <b64ref>
    LAYER = "layer"  # <b64ref>/<digest>
    DIFF = "diff"  # <b64ref>/<digest>/diff[/rest]
    INFO = "info"
    BLOB = "blob"
    USE = "use"
    OTHER = "other"  # a name that cannot exist


@dataclass(frozen=True, slots=True)
class AlsPath:
    kind: Kind
    ref: str = ""  # decoded image reference
    digest: str = ""
    rest: str = "."  # path inside diff/ (normalized, "." = diff itself)


def encode_ref(ref: str) -> str:
    return base64.b64encode(ref.encode()).decode()


def decode_ref(element: str) -> str | None:
    """The reference named by a path element, or None when it is not canonical base64 text."""
    try:
        raw = base64.b64decode(element.encode(), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not text or encode_ref(text) != element or any(c.isspace() for c in text):
        return None
    return text


def parse(path: str) -> AlsPath:
    """Classify an absolute FUSE path (`/`, `/<b64>`, `/<b64>/<digest>/diff/usr/bin`, ...)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return AlsPath(Kind.ROOT)
    ref = decode_ref(parts[0])
    if ref is None:
        return AlsPath(Kind.OTHER)
    if len(parts) == 1:
        return AlsPath(Kind.IMAGE, ref)
    digest = parts[1]
    if not _DIGEST.match(digest):
        return AlsPath(Kind.OTHER, ref)
    if len(parts) == 2:
        return AlsPath(Kind.LAYER, ref, digest)
    name = parts[2]
    if name == "diff":
        rest = "/".join(parts[3:]) or "."
        return AlsPath(Kind.DIFF, ref, digest, rest)
    if len(parts) == 3 and name in ("info", "blob", USE):
        return AlsPath(Kind(name), ref, digest)
    return AlsPath(Kind.OTHER, ref, digest)
