"""Format detection from media type + annotations + footer, and the one TOC dispatch."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from imgtrees import sample_nodes, tar_bytes

from imageformat.detect import (
    BUILD_FORMATS,
    ENCODERS,
    detect_format,
    encode_layer,
    parse_format,
    read_layer_toc,
)
from imageformat.errors import FormatError, TruncatedLayerError
from imageformat.estargz import encode_estargz
from imageformat.layer import MEDIA_TYPE_GZIP, MEDIA_TYPE_TAR, MEDIA_TYPE_ZSTD
from imageformat.toc import Compression, LayerFormat

TESTDATA = Path(__file__).resolve().parents[4] / "shared" / "testdata"
if not TESTDATA.is_dir():
    TESTDATA = Path("/work/shared/testdata")
VECTORS = sorted(p for p in TESTDATA.glob("zstdchunked-*/*") if (p / "layer.zst").is_file())


@pytest.fixture(scope="module")
def encoded() -> dict[LayerFormat, tuple[bytes, dict[str, str], str]]:
    tar = tar_bytes(sample_nodes())
    out: dict[LayerFormat, tuple[bytes, dict[str, str], str]] = {}
    for fmt in BUILD_FORMATS:
        dst = io.BytesIO()
        layer = encode_layer(fmt, io.BytesIO(tar), dst)
        assert layer.format is fmt
        out[fmt] = (dst.getvalue(), dict(layer.annotations), layer.media_type)
    dst = io.BytesIO()
    layer = encode_estargz(io.BytesIO(tar), dst, compression=Compression.ZSTD)
    out[LayerFormat.STARGZ_ZSTDCHUNKED] = (dst.getvalue(), dict(layer.annotations), layer.media_type)
    return out


def test_every_writable_format_has_one_encoder():
    assert set(ENCODERS) == {f for f in LayerFormat if f is not LayerFormat.STARGZ_ZSTDCHUNKED}
    assert parse_format("zstd:chunked-legacy") is LayerFormat.ZSTD_CHUNKED_LEGACY
    with pytest.raises(FormatError, match="choose one of"):
        parse_format("stargz-zstdchunked")


@pytest.mark.parametrize("with_annotations", [True, False])
@pytest.mark.parametrize("fmt", list(LayerFormat), ids=lambda f: f.value)
def test_detect_and_read_toc(encoded, fmt, with_annotations):
    blob, annotations, media_type = encoded[fmt]
    ann = annotations if with_annotations else {}
    assert detect_format(media_type, ann, io.BytesIO(blob), len(blob)) is fmt
    toc = read_layer_toc(media_type, ann, io.BytesIO(blob), len(blob))
    if not fmt.lazy:
        assert toc is None
        return
    assert toc is not None and toc.format is fmt
    assert toc.entry("usr/bin/big").size == 300_000
    if with_annotations and toc.format is not LayerFormat.STARGZ_ZSTDCHUNKED:
        assert toc.digest in annotations.values()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_zstd_chunked_vectors(vector):
    blob = (vector / "layer.zst").read_bytes()
    annotations = json.loads((vector / "annotations.json").read_text())
    expected = (
        LayerFormat.ZSTD_CHUNKED_LEGACY if vector.parent.name.endswith("-a") else LayerFormat.ZSTD_CHUNKED
    )
    for ann in (annotations, {}):
        assert detect_format(MEDIA_TYPE_ZSTD, ann, io.BytesIO(blob), len(blob)) is expected
        toc = read_layer_toc(MEDIA_TYPE_ZSTD, ann, io.BytesIO(blob), len(blob))
        assert toc is not None and toc.format is expected
        assert toc.toc_range.length == int(
            next(v for k, v in annotations.items() if k.endswith("manifest-position")).split(":")[1]
        )


def test_unsupported_and_truncated(encoded):
    with pytest.raises(FormatError, match="uncompressed"):
        read_layer_toc(MEDIA_TYPE_TAR, {}, io.BytesIO(b"x" * 100), 100)
    with pytest.raises(FormatError, match="media type"):
        read_layer_toc("application/octet-stream", {}, io.BytesIO(b"x" * 100), 100)
    with pytest.raises(TruncatedLayerError):
        read_layer_toc(MEDIA_TYPE_GZIP, {}, io.BytesIO(b"\x1f\x8b"), 2)
    blob, annotations, media_type = encoded[LayerFormat.ESTARGZ]
    with pytest.raises(FormatError):
        read_layer_toc(media_type, annotations, io.BytesIO(blob[:-60]), len(blob) - 60)
    blob, annotations, media_type = encoded[LayerFormat.ZSTD_CHUNKED]
    with pytest.raises(FormatError):
        read_layer_toc(media_type, annotations, io.BytesIO(blob[: len(blob) // 2]), len(blob) // 2)
