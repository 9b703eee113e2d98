"""`lazylab demo`: build an image in every layer format from a generated tree, verify, compare.

Until the experiments land this is the main job of `make demo`: a few MB of realistic files,
one OCI image per format, each verified end to end, and a table of size, compression ratio,
files, chunks, TOC bytes and build throughput.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from imageformat.build import build_image
from imageformat.detect import BUILD_FORMATS
from imageformat.sampletree import write_sample_tree
from imageformat.verify import verify_image
from lazylab.cli import CliError


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    if args.size_mb <= 0 or args.size_mb > 4096:
        raise CliError(f"--size-mb (={args.size_mb}) must be in (0, 4096]")
    console = Console(width=shutil.get_terminal_size((110, 24)).columns)
    keep = args.out is not None
    work = Path(args.out) if keep else Path(tempfile.mkdtemp(prefix="lazylab-demo-"))
    if keep and work.exists() and any(work.iterdir()):
        raise CliError(f"{work} exists and is not empty; pick another --out")
    try:
        tree = work / "tree"
        stats = write_sample_tree(tree, total_bytes=int(args.size_mb * (1 << 20)), seed=args.seed)
        console.print(f"generated {stats.files} files, {stats.total_bytes / 1e6:.1f} MB under {tree}")
        table = Table(title="one image per layer format (same tree)")
        for col in ("format", "layer bytes", "ratio", "files", "chunks", "TOC bytes", "build MB/s", "verify"):
            table.add_column(col, justify="left" if col in ("format", "verify") else "right")
        for fmt in BUILD_FORMATS:
            oci = work / "oci" / fmt.value.replace(":", "-")
            t0 = time.perf_counter()
            result = build_image(tree, oci, "demo", fmt)
            build_s = time.perf_counter() - t0
            report = verify_image(oci, "demo")
            layer = report.layers[0]
            table.add_row(
                fmt.value,
                f"{layer.compressed_size:,}",
                f"{layer.uncompressed_size / layer.compressed_size:.2f}",
                str(layer.files), str(layer.chunks), f"{layer.toc_bytes:,}",
                f"{result.input_tar_bytes / build_s / 1e6:.1f}", "ok",
            )
        console.print(table)
        if keep:
            console.print(f"images in {work / 'oci'} (OCI layouts; try `lazylab image inspect`)")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `demo` subcommand."""
    p = sub.add_parser("demo", help="build and verify an image in every layer format; print a comparison")
    p.add_argument("--size-mb", type=float, default=8.0, help="size of the generated tree (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated tree")
    p.add_argument("--out", type=Path, help="keep the tree and images here (default: a temp dir, removed)")
    p.set_defaults(func=_demo)
