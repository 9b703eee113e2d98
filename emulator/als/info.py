"""The `info` JSON of a layer, in both conventions containers/storage has used (spec section 4.3).

* compressed-digest convention (c/storage <= 1.53, stargz-store <= 0.15; podman 4.3.1):
  `compressed-diff-digest`, `compressed-size`, `diff-digest` (= the config's diff_id),
  `diff-size` (uncompressed size, -1 when unknown), `compression`.
* TOC-digest convention (c/storage >= 1.54, stargz-store >= 0.16): `toc-digest`,
  `diff-size` -1, `compression`, `flags.expected-layer-diffid` (= the config's diff_id).
`compression` uses containers/storage's enum (2 gzip, 4 zstd) with the blob's real
compression (stargz-store always writes 2 because it only serves gzip eStargz).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum

from imageformat.toc import Compression

UNCOMPRESSED_SIZE_ANNOTATION = "io.containers.estargz.uncompressed-size"
STORAGE_COMPRESSION = {Compression.GZIP: 2, Compression.ZSTD: 4}


class Convention(StrEnum):
    COMPRESSED_DIGEST = "compressed-digest"
    TOC_DIGEST = "toc-digest"


def uncompressed_size(annotations: Mapping[str, str]) -> int:
    try:
        return int(annotations.get(UNCOMPRESSED_SIZE_ANNOTATION, "-1"))
    except ValueError:
        return -1


def layer_info(
    *,
    convention: Convention,
    compressed_digest: str,
    compressed_size: int,
    diff_id: str,
    toc_digest: str,
    compression: Compression,
    annotations: Mapping[str, str],
) -> bytes:
    if convention is Convention.COMPRESSED_DIGEST:
        record: dict[str, object] = {
            "compressed-diff-digest": compressed_digest,
            "compressed-size": compressed_size,
            "diff-digest": diff_id,
            "diff-size": uncompressed_size(annotations),
            "compression": STORAGE_COMPRESSION[compression],
        }
    else:
        record = {
            "diff-size": -1,
            "compression": STORAGE_COMPRESSION[compression],
            "toc-digest": toc_digest,
            "flags": {"expected-layer-diffid": diff_id},
        }
    return json.dumps(record, separators=(",", ":")).encode()
