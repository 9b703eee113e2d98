"""One exception class per failure class of node configuration input."""

from __future__ import annotations


class NodeConfigError(ValueError):
    """Base: node configuration input that is wrong (a user error, printed as one line)."""


class CrcError(NodeConfigError):
    """A ContainerRuntimeConfig object that is malformed; the message names the field path."""


class StorageConfError(NodeConfigError):
    """A storage.conf or storage.conf.d drop-in that cannot be read or parsed."""


class LayerStateError(NodeConfigError):
    """A state marker that does not follow `version=N;store-format=N;ALS="..."`."""
