"""One exception type per way a layer or image can be wrong.

Every error raised by `imageformat` for bad input derives from `FormatError`, so the CLI can
print it as one line; the subclasses let tests and callers tell the failure classes apart.
"""

from __future__ import annotations

from imageformat.digest import DigestError
from imageformat.layer import ChunkDecodeError


class FormatError(ValueError):
    """Base class: the input is not a valid layer/image of the claimed kind."""


class TruncatedLayerError(FormatError):
    """The blob ends before the structure it declares (footer, TOC, frames)."""


class FooterError(FormatError):
    """No recognisable footer, or footer fields that contradict the blob or annotations."""


class TocError(FormatError):
    """A TOC that cannot be parsed, or that lies (bad offsets, overlaps, sizes that disagree)."""


class TocDigestError(TocError):
    """The TOC (or tar-split) bytes do not match the digest that authenticates them."""


class TocTooLargeError(TocError):
    """The TOC exceeds the size limit (150 MiB, as containers/storage >= 1.58) or an absurd count."""


class UnsafePathError(TocError):
    """A name with `..` components, an absolute escape, or a link that leaves the root."""


class DuplicateEntryError(FormatError):
    """The same path twice where the format forbids it (zstd:chunked with tar-split)."""


class UnsupportedEntryError(FormatError):
    """A tar entry type the format cannot carry (PAX global header, GNU sparse, contiguous)."""


class InvalidTarError(FormatError):
    """The uncompressed tar itself is malformed (bad header checksum, truncated, bad PAX record)."""


class DecompressionBombError(FormatError):
    """Decoding would exceed the declared size or the configured cap."""


class ContentDigestError(FormatError):
    """File, chunk, layer or diff_id content that does not match its digest."""


class LayoutError(FormatError):
    """An OCI image layout that is missing files or has invalid JSON/descriptors."""


__all__ = [
    "ChunkDecodeError",
    "ContentDigestError",
    "DecompressionBombError",
    "DigestError",
    "DuplicateEntryError",
    "FooterError",
    "FormatError",
    "InvalidTarError",
    "LayoutError",
    "TocDigestError",
    "TocError",
    "TocTooLargeError",
    "TruncatedLayerError",
    "UnsafePathError",
    "UnsupportedEntryError",
]
