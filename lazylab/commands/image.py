"""`lazylab image`: build, convert, inspect and verify OCI image layouts in every layer format."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imageformat.build import build_image, convert_image
from imageformat.detect import BUILD_FORMATS, parse_format
from imageformat.errors import FormatError
from imageformat.inspect import inspect_image, report_json
from imageformat.plain import DEFAULT_MAX_DECOMPRESSED_BYTES
from imageformat.tree import read_prioritize_file
from imageformat.verify import verify_image
from lazylab import cli

if FormatError not in cli.USER_ERRORS:
    cli.USER_ERRORS.append(FormatError)

FORMAT_NAMES = [f.value for f in BUILD_FORMATS]


def _size(text: str) -> int:
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1:] if t[-1:] in units else ""
    try:
        value = int(t[: len(t) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be > 0")
    return value * units[unit]


def _build(args: argparse.Namespace) -> int:
    fmt = parse_format(args.format)
    paths = read_prioritize_file(args.prioritize) if args.prioritize else None
    result = build_image(args.src, args.output, args.tag, fmt, prioritize=paths)
    layer = result.layers[0]
    print(f"{result.oci_dir}:{result.tag} {fmt.value} layer {layer.digest} "
          f"({layer.size} bytes, diff_id {layer.diff_id})")
    return 0


def _convert(args: argparse.Namespace) -> int:
    fmt = parse_format(args.format)
    result = convert_image(args.src, args.output, fmt, tag=args.tag, src_tag=args.src_tag)
    print(f"{result.oci_dir}:{result.tag} {fmt.value}, {len(result.layers)} layer(s), "
          f"manifest {result.manifest_digest}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    report = inspect_image(args.oci_dir, args.tag, max_decompressed_bytes=args.max_decompressed)
    if args.json:
        print(json.dumps(report_json(report), indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report.oci_dir}:{report.tag} ({report.manifest_digest[:19]}…)")
    for col in ("#", "format", "gen", "files", "chunks", "size", "compressed", "TOC bytes", "digest"):
        table.add_column(col, justify="left" if col in ("format", "gen", "digest") else "right")
    for layer in report.layers:
        table.add_row(str(layer.index), layer.format.value, layer.generation, str(layer.files),
                      str(layer.chunks), str(layer.uncompressed_size), str(layer.compressed_size),
                      str(layer.toc_bytes), layer.digest[:19] + "…")
    Console().print(table)
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Exit 0 when everything checks out, 1 with one line naming the first problem."""
    try:
        report = verify_image(args.oci_dir, args.tag, max_decompressed_bytes=args.max_decompressed)
    except FormatError as e:
        print(f"lazylab: error: verify failed: {e}", file=sys.stderr)
        return 1
    files = sum(layer.files for layer in report.layers)
    print(f"ok: {report.oci_dir}:{report.tag}, {len(report.layers)} layer(s), {files} files verified")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `image build|convert|inspect|verify`."""
    p = sub.add_parser("image", help="build, convert, inspect and verify images (all layer formats)")
    isub = p.add_subparsers(dest="image_command", metavar="ACTION")
    isub.required = True

    b = isub.add_parser("build", help="build a one-layer OCI image from a directory or tar")
    b.add_argument("src", type=Path, metavar="SRC", help="directory or tar file")
    b.add_argument("-o", "--output", type=Path, required=True, metavar="OCI_DIR")
    b.add_argument("--tag", required=True)
    b.add_argument("--format", required=True, metavar="F", help=f"one of: {', '.join(FORMAT_NAMES)}")
    b.add_argument("--prioritize", type=Path, metavar="FILE", help="paths to put first, one per line")
    b.set_defaults(func=_build)

    c = isub.add_parser("convert", help="re-encode every layer of an image in another format")
    c.add_argument("src", type=Path, metavar="SRC_OCI")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="DST_OCI")
    c.add_argument("--format", required=True, metavar="F", help=f"one of: {', '.join(FORMAT_NAMES)}")
    c.add_argument("--tag", help="tag in DST_OCI (default: the source tag)")
    c.add_argument("--src-tag", help="image to convert when SRC_OCI holds several")
    c.set_defaults(func=_convert)

    for name, func, text in (("inspect", _inspect, "describe each layer"),
                             ("verify", _verify, "check every digest, stream and TOC range")):
        q = isub.add_parser(name, help=text)
        q.add_argument("oci_dir", type=Path, metavar="OCI_DIR")
        q.add_argument("--tag", help="image to look at when OCI_DIR holds several")
        q.add_argument("--max-decompressed", type=_size, default=DEFAULT_MAX_DECOMPRESSED_BYTES,
                       metavar="SIZE", help="cap on a layer's decompressed size (decompression bombs)")
        if name == "inspect":
            q.add_argument("--json", action="store_true", help="print JSON")
        q.set_defaults(func=func)
