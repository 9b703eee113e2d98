"""The four ways a node can get an image before a container starts."""

from __future__ import annotations

from enum import StrEnum


class PullMode(StrEnum):
    FULL = "full"  # download, decompress and extract every layer, then start
    PARTIAL = "partial"  # containers/storage partial pull: TOC, reuse local chunks, fetch the rest
    LAZY = "lazy"  # TOC only, then start; reads fetch on demand
    LAZY_PREFETCH = "lazy-prefetch"  # as lazy, but the prefetch range completes before "created"

    @classmethod
    def parse(cls, value: str) -> PullMode:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(f"mode (={value!r}) must be one of {choices}") from None
