"""`lazylab demo`: the quickstart (`make demo`) — a real image, four pull modes, both engines.

The logic is `experiments.quickstart`; this prints its table (pull / create / ready per mode,
emulated and simulated, the prediction error, bytes fetched) and writes the plot
(`reports/demo.png` by default). `--formats` adds the first, older section: a generated tree
built in every layer format, verified, with size, ratio, chunks and TOC bytes.
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


def _formats(args: argparse.Namespace) -> int:
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


def _demo(args: argparse.Namespace) -> int:
    import matplotlib
    from rich.console import Console
    from rich.table import Table

    from experiments.errors import ExperimentError
    from experiments.quickstart import (
        COLUMNS,
        NOTES,
        QuickstartSpec,
        comparison_rows,
        plot_quickstart,
        run_quickstart,
        summary_lines,
    )

    t0 = time.perf_counter()
    if args.formats:
        _formats(args)
    try:
        spec = QuickstartSpec(image=args.image, link_bytes_per_s=args.link_mbit * 1e6 / 8,
                              rtt_s=args.rtt_ms / 1e3, seed=args.seed, params_file=args.params)
    except ExperimentError as e:
        raise CliError(str(e)) from None
    console = Console(width=max(110, shutil.get_terminal_size((120, 24)).columns))
    console.print(f"[bold]quickstart[/]: image {spec.image!r} (real, zstd:chunked), one node, "
                  f"{args.link_mbit:g} Mbit/s link, RTT {args.rtt_ms:g} ms, its recorded startup trace; "
                  "each mode emulated for real and simulated")
    with console.status("building the image (first run only)...") as status:
        result = run_quickstart(spec, on_step=lambda msg: status.update(msg + "..."))
    rows = comparison_rows(result)
    show_error = any(r[-1] for r in rows)
    table = Table(title="time to ready per pull mode (s): emulated vs simulated")
    for col in COLUMNS if show_error else COLUMNS[:-1]:
        table.add_column(col, justify="left" if col in ("mode", "error") else "right", no_wrap=col == "mode")
    for row in rows:
        table.add_row(*(row if show_error else row[:-1]))
    console.print(table)
    console.print(NOTES)
    for line in summary_lines(result):
        console.print(line)
    matplotlib.use("Agg")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    png = args.out_dir / "demo.png"
    plot_quickstart(result).savefig(png, dpi=110, bbox_inches="tight")
    console.print(f"plot: {png}   (total {time.perf_counter() - t0:.0f} s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `demo` subcommand."""
    p = sub.add_parser("demo", help="the quickstart: a real image in four pull modes, emulated and simulated")
    p.add_argument("--image", default="python", choices=("python", "busybox"),
                   help="real image to start (default python)")
    p.add_argument("--link-mbit", type=float, default=100.0, help="node link, Mbit/s (default 100)")
    p.add_argument("--rtt-ms", type=float, default=20.0, help="round trip to the registry, ms (default 20)")
    p.add_argument("--params", help="calibrated params file (default: the committed one)")
    p.add_argument("--out-dir", type=Path, default=Path("reports"),
                   help="where demo.png goes (default: reports)")
    p.add_argument("--seed", type=int, default=0, help="seed (and of the --formats tree)")
    p.add_argument("--formats", action="store_true",
                   help="first build a generated tree in every layer format and compare them")
    p.add_argument("--size-mb", type=float, default=8.0, help="--formats: size of the generated tree")
    p.add_argument("--out", type=Path, help="--formats: keep the tree and images here (default: removed)")
    p.set_defaults(func=_demo)
