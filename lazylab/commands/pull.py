"""`lazylab pull REF --mode full|partial|lazy|lazy-prefetch [--trace TRACE]`: one measured start.

Runs the start on a fresh emulated node (its work directory is temporary unless --work-dir is
given), shows progress while bytes move, then prints the phase table and what was moved.
`--records OUT.csv` appends nothing: it writes the one StartupRecord as CSV.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from emulator.errors import EmulatorError
from emulator.modes import StartResult, StartSpec, run_start_detailed
from emulator.node import EmulatedNode
from emulator.reference import parse_reference
from lazylab import cli
from lazylab.commands.lazy import add_registry_options, options_from
from registry_mock import preciseloop
from startup.modes import PullMode
from startup.record import StartupRecord, write_csv
from startup.scenario import PREFETCH_KINDS, FirstBytesPrefetch, PullSpec
from startup.trace import Trace, TraceError

for _err in (EmulatorError, TraceError):
    if _err not in cli.USER_ERRORS:
        cli.USER_ERRORS.append(_err)


def _pull_spec(args: argparse.Namespace) -> PullSpec:
    kind = PREFETCH_KINDS[args.prefetch]
    prefetch = FirstBytesPrefetch(bytes=args.prefetch_bytes) if kind is FirstBytesPrefetch else kind()
    return replace(
        PullSpec(),
        lazy_granularity=args.granularity,
        background_fetch=not args.no_background,
        prefetch=prefetch,
        max_parallel_layers=args.parallel_layers,
    )


async def _run(args: argparse.Namespace, work: Path) -> StartResult:
    opts = options_from(args)
    ref = parse_reference(args.ref)
    trace = Trace.load(args.trace) if args.trace else Trace()
    node = EmulatedNode("local", work, client_options=opts.client)
    spec = StartSpec(mode=PullMode.parse(args.mode), trace=trace, pull=_pull_spec(args), pod="pull")
    try:
        task = asyncio.create_task(run_start_detailed(node, ref, spec))
        if args.quiet:
            return await task
        from rich.console import Console

        console = Console(stderr=True)
        start = time.perf_counter()
        with console.status(f"{spec.mode.value} pull of {ref}") as status:
            while not task.done():
                await asyncio.wait({task}, timeout=0.25)
                mb = node.client.body_bytes / 1e6
                status.update(
                    f"{spec.mode.value} pull of {ref}: {mb:.1f} MB in {time.perf_counter() - start:.1f} s"
                )
        return task.result()
    finally:
        await node.close()


def _fmt_s(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def print_record(r: StartupRecord) -> None:
    from rich.console import Console
    from rich.table import Table

    phases = Table(title=f"{r.mode.value} start of {r.image}")
    phases.add_column("phase")
    phases.add_column("seconds", justify="right")
    phases.add_column("at (s)", justify="right")
    phases.add_row("resolve", _fmt_s(r.resolved_s - r.submitted_s), _fmt_s(r.resolved_s))
    phases.add_row("pull", _fmt_s(r.pulled_s - r.resolved_s), _fmt_s(r.pulled_s))
    phases.add_row("create", _fmt_s(r.create_s), _fmt_s(r.created_s))
    phases.add_row("run (trace)", _fmt_s(r.run_s), _fmt_s(r.ready_s))
    phases.add_row("time to ready", _fmt_s(r.time_to_ready_s), "")
    moved = Table(title="bytes and requests")
    moved.add_column("what")
    moved.add_column("value", justify="right")
    for name in (
        "bytes_manifest",
        "bytes_toc",
        "bytes_layers",
        "bytes_on_demand",
        "bytes_prefetch",
        "bytes_background",
        "bytes_reused",
        "requests",
        "ranges",
        "cache_hits",
        "cache_misses",
    ):
        moved.add_row(name, f"{getattr(r, name):,}")
    moved.add_row("total fetched", f"{r.bytes_fetched:,}")
    console = Console()
    console.print(phases)
    console.print(moved)


def _pull(args: argparse.Namespace) -> int:
    if args.work_dir:
        result = preciseloop.run(_run(args, Path(args.work_dir)))
    else:
        with tempfile.TemporaryDirectory(prefix="lazylab-pull-") as tmp:
            result = preciseloop.run(_run(args, Path(tmp)))
    print_record(result.record)
    if result.replay is not None:
        print(
            f"trace: {result.replay.ops} ops, {result.replay.bytes_read:,} bytes read, "
            f"{result.replay.missing} missing paths probed"
        )
    if args.records:
        write_csv([result.record], args.records)
    if result.record.error:
        raise cli.CliError(f"start failed: {result.record.error}", status=1)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `lazylab pull`."""
    p = sub.add_parser("pull", help="one measured container start in one pull mode")
    p.add_argument("ref", metavar="REF", help="HOST[:PORT]/REPO[:TAG|@DIGEST]")
    p.add_argument("--mode", required=True, choices=[m.value for m in PullMode])
    p.add_argument("--trace", metavar="TRACE", help="workload trace (JSON lines); default: no reads")
    p.add_argument("--prefetch", choices=sorted(PREFETCH_KINDS), default="landmark")
    p.add_argument("--prefetch-bytes", type=int, default=10_000_000, help="for --prefetch first-bytes")
    p.add_argument("--no-background", action="store_true", help="lazy modes: no background fetch")
    p.add_argument("--parallel-layers", type=int, default=6, help="full pull: layers downloaded at once")
    p.add_argument("--work-dir", metavar="DIR", help="node directory (roots, cache); default: temporary")
    p.add_argument("--records", metavar="OUT.csv", help="write the StartupRecord as CSV")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    add_registry_options(p)
    p.set_defaults(func=_pull)
