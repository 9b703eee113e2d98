"""Building an OCI image from a tree or tar, and converting an image to another layer format.

`build_image` makes a one-layer image: SRC (directory or tar) -> layer tar (-> prioritized tar
with `.prefetch.landmark` for lazy formats when a list is given) -> the format's encoder ->
blob, config (diff_ids = the encoder's decompressed-stream digest) and manifest in the layout.
`convert_image` decodes each layer of an image to its tar and re-encodes it, rewriting
diff_ids; eStargz sources lose their TOC entry and landmarks first (the target format adds its
own), every other tar passes through byte for byte.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from imageformat.detect import as_fetch, compression_of, detect_format, encode_layer, parse_format
from imageformat.errors import LayoutError
from imageformat.layer import EncodedLayer
from imageformat.oci import Descriptor, Image, OciLayout, new_config
from imageformat.plain import DEFAULT_MAX_DECOMPRESSED_BYTES, decompress_to
from imageformat.toc import LayerFormat
from imageformat.tree import prioritize as prioritize_tar
from imageformat.tree import source_tar, strip_estargz_entries

_STARGZ_FORMATS = (LayerFormat.ESTARGZ, LayerFormat.STARGZ_ZSTDCHUNKED)


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    oci_dir: Path
    tag: str
    format: LayerFormat
    layers: tuple[EncodedLayer, ...]
    manifest_digest: str
    input_tar_bytes: int  # size of the layer tars fed to the encoder(s)


def _as_format(fmt: LayerFormat | str) -> LayerFormat:
    return parse_format(fmt.value if isinstance(fmt, LayerFormat) else fmt)


def _spool() -> BinaryIO:
    return tempfile.TemporaryFile(prefix="lazylab-layer-")  # type: ignore[return-value]


def encode_tar_into(layout: OciLayout, tar: BinaryIO, fmt: LayerFormat,
                    prioritize: Sequence[str] | None = None) -> tuple[EncodedLayer, Descriptor, int]:
    """Encode the seekable tar `tar` as one layer blob of `layout`; returns (layer, descriptor, tar size)."""
    tar.seek(0)
    if prioritize and fmt.lazy:
        ordered = _spool()
        prioritize_tar(tar, ordered, list(prioritize))
        tar = ordered
    tar.seek(0, 2)
    tar_bytes = tar.tell()
    tar.seek(0)
    with layout.new_blob() as (blob, slot):
        layer = encode_layer(fmt, tar, blob)
        slot.append(layer.digest)
    desc = Descriptor(media_type=layer.media_type, digest=layer.digest, size=layer.size,
                      annotations=dict(layer.annotations))
    return layer, desc, tar_bytes


def build_image(src: Path | str, oci_dir: Path | str, tag: str, fmt: LayerFormat | str,
                prioritize: Sequence[str] | None = None) -> BuildResult:
    """A one-layer image of `src` (directory or tar) in the layout `oci_dir`, tagged `tag`."""
    layer_format = _as_format(fmt)
    if not tag or "/" in tag or any(c.isspace() for c in tag):
        raise LayoutError(f"tag {tag!r} must be non-empty without '/' or spaces")
    layout = OciLayout.create(oci_dir)
    with _spool() as tar:
        source_tar(Path(src), tar)
        layer, desc, tar_bytes = encode_tar_into(layout, tar, layer_format, prioritize)
    history = [{"created_by": f"lazylab image build --format {layer_format.value}",
                "comment": f"source {Path(src).name}"}]
    image = layout.write_image(layers=[desc], config=new_config([layer.diff_id], history=history), tag=tag)
    return BuildResult(oci_dir=Path(oci_dir), tag=tag, format=layer_format, layers=(layer,),
                       manifest_digest=image.manifest_descriptor.digest, input_tar_bytes=tar_bytes)


def layer_tar(layout: OciLayout, desc: Descriptor, dst: BinaryIO, *,
              max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> LayerFormat:
    """Decompress a layer into `dst` as a plain tar (eStargz TOC entry and landmarks removed)."""
    compression = compression_of(desc.media_type)
    with layout.open_blob(desc) as blob:
        src_format = detect_format(desc.media_type, desc.annotations, as_fetch(blob), desc.size)
        blob.seek(0)
        if src_format not in _STARGZ_FORMATS:
            decompress_to(compression, blob, dst, max_bytes=max_bytes)
            return src_format
        with _spool() as raw:
            decompress_to(compression, blob, raw, max_bytes=max_bytes)
            raw.seek(0)
            strip_estargz_entries(raw, dst)
    return src_format


def convert_image(src_oci: Path | str, dst_oci: Path | str, fmt: LayerFormat | str, tag: str | None = None,
                  *, src_tag: str | None = None) -> BuildResult:
    """Re-encode every layer of the image `src_tag` (the only one when None) as `fmt`."""
    layer_format = _as_format(fmt)
    source = OciLayout.open(src_oci)
    image: Image = source.resolve(src_tag)
    out_tag = tag or image.tag
    if not out_tag:
        raise LayoutError("the source image has no tag; pass --tag")
    dest = OciLayout.create(dst_oci)
    layers: list[EncodedLayer] = []
    descs: list[Descriptor] = []
    total = 0
    for desc in image.layers:
        with _spool() as tar:
            layer_tar(source, desc, tar)
            layer, new_desc, tar_bytes = encode_tar_into(dest, tar, layer_format)
        layers.append(layer)
        descs.append(new_desc)
        total += tar_bytes
    config: dict[str, Any] = dict(image.config)
    config["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    history = list(config.get("history") or [])
    history.append({"created_by": f"lazylab image convert --format {layer_format.value}",
                    "empty_layer": True})
    config["history"] = history
    out = dest.write_image(layers=descs, config=config, tag=out_tag)
    return BuildResult(oci_dir=Path(dst_oci), tag=out_tag, format=layer_format, layers=tuple(layers),
                       manifest_digest=out.manifest_descriptor.digest, input_tar_bytes=total)


__all__ = ["BuildResult", "build_image", "convert_image", "encode_tar_into", "layer_tar"]
