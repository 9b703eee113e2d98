"""The emulator's failure classes: one exception type per way a pull or a read can fail.

`EmulatorError` is the base the CLI prints as one line. Reads through a `FileSystemView`
turn these into `OSError(EIO)` (see `emulator.lazyview`), never into wrong bytes.
"""

from __future__ import annotations


class EmulatorError(Exception):
    """Base class of every emulator error."""


class BadReferenceError(EmulatorError, ValueError):
    """An image reference that does not parse (`HOST[:PORT]/REPO[:TAG|@DIGEST]`)."""


class RegistryError(EmulatorError):
    """The registry answered with an error status (after retries, where retrying made sense)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class AuthError(RegistryError):
    """Credentials missing or refused (401/403), or a token endpoint that misbehaves."""


class NotFoundError(RegistryError):
    """Manifest, tag or blob unknown to the registry (404)."""


class RangeProtocolError(RegistryError):
    """A range response that does not answer the request (bad Content-Range, missing parts, short body)."""


class TransferError(RegistryError):
    """The connection failed or kept failing (timeouts, resets, 5xx) after every retry."""


class ManifestError(EmulatorError):
    """A manifest or index that is malformed, or has no linux/amd64 image."""


class VerificationError(EmulatorError):
    """Fetched bytes that do not match the digest that authenticates them (never served)."""


class NotLazyError(EmulatorError):
    """A layer without a TOC (plain gzip/zstd) asked for a lazy or partial operation."""
