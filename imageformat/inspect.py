"""Describing an image's layers: format, generation, files, chunks, sizes, TOC size.

`inspect_image` runs the same per-layer pass as `verify` without reading files back through
their TOC ranges (the blob digest, TOC authentication and diff_id are still checked, since a
description of unverified bytes would be worthless).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from imageformat.plain import DEFAULT_MAX_DECOMPRESSED_BYTES
from imageformat.verify import ImageReport, examine_image


def inspect_image(oci_dir: Path | str, tag: str | None = None, *,
                  max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> ImageReport:
    return examine_image(oci_dir, tag, deep=False, max_decompressed_bytes=max_decompressed_bytes)


def report_json(report: ImageReport) -> dict[str, Any]:
    """A JSON-ready dict (formats as their names)."""
    return {
        "oci_dir": str(report.oci_dir),
        "tag": report.tag,
        "manifest_digest": report.manifest_digest,
        "layers": [{**asdict(layer), "format": layer.format.value} for layer in report.layers],
    }


__all__ = ["inspect_image", "report_json"]
