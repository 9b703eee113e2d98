"""OCI content digests (`sha256:<hex>`), parsed strictly."""

from __future__ import annotations

import hashlib
import re

_DIGEST_RE = re.compile(r"^(sha256):([a-f0-9]{64})$|^(sha512):([a-f0-9]{128})$")


class DigestError(ValueError):
    """A string that is not a valid OCI digest, or content that does not match one."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_digest(value: str) -> tuple[str, str]:
    """Return (algorithm, hex) of a digest such as `sha256:ab…`, or raise DigestError."""
    m = _DIGEST_RE.match(value)
    if not m:
        raise DigestError(f"not a valid sha256/sha512 digest: {value[:80]!r}")
    return (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


class Hasher:
    """Incremental digest in OCI form."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> str:
        return f"{self.algorithm}:{self._h.hexdigest()}"


def verify(data: bytes, expected: str) -> None:
    algo, _ = parse_digest(expected)
    got = f"{algo}:{hashlib.new(algo, data).hexdigest()}"
    if got != expected:
        raise DigestError(f"digest mismatch: expected {expected}, got {got}")
