"""`lazylab lazy mount REF MOUNTPOINT [--record TRACE]`: the parser hook and its runner.

`lazylab/commands/lazy.py` calls `add_mount_parser(lazy_subparsers)` (inside try/except
ImportError); `python -m emulator.fuse` runs the same command standalone. REF is an image
reference served by the lazy store, or a local directory (an extracted root; handy for
comparing FUSE with the source). Prints `mounted MOUNTPOINT` once the kernel can use the
mount, blocks until unmounted (Ctrl-C, SIGTERM or `fusermount3 -u`), then writes the trace.
Errors raise `EmulatorError` subclasses (the CLI prints them as one line).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from emulator.errors import EmulatorError
from emulator.fuse.localview import DirectoryView
from emulator.fuse.mount import mount
from emulator.fuse.recorder import TraceRecorder
from emulator.view import FileSystemView


class ViewUnavailableError(EmulatorError):
    """REF is neither a local directory nor something the lazy store can open."""


@contextlib.contextmanager
def open_view(ref: str, options: argparse.Namespace | None = None) -> Iterator[FileSystemView]:
    """A view for REF: a local directory, else the emulator's lazy store (closed afterwards)."""
    if os.path.isdir(ref):
        yield DirectoryView(ref)
        return
    try:
        from emulator.lazyview import open_lazy_view
    except ImportError as e:
        raise ViewUnavailableError(f"{ref}: not a directory and no lazy store here ({e})") from None
    view, close = open_lazy_view(ref, options)  # the Namespace carries the registry options
    try:
        yield view
    finally:
        close()


class MountUsageError(EmulatorError):
    """A mount option with a bad value."""


def run_mount(args: argparse.Namespace) -> int:
    if args.creds:
        user, sep, password = args.creds.partition(":")
        if not sep or not user:
            raise MountUsageError(f"--creds (={args.creds!r}) must be USER:PASS")
        args.username, args.password = user, password
    recorder = TraceRecorder() if args.record else None
    mp = Path(args.mountpoint)

    def ready() -> None:
        print(f"mounted {mp}", flush=True)

    with open_view(args.ref, args) as view:
        stats = mount(
            view,
            mp,
            record=recorder,
            on_ready=ready,
            allow_other=args.allow_other,
            single_threaded=args.single_threaded,
            kernel_cache=args.kernel_cache,
            attr_timeout_s=args.attr_timeout,
        )
    print(f"fuse: {stats.ops} operations, {stats.cpu_s:.3f} s CPU in the handlers", flush=True)
    if recorder is not None:
        trace = recorder.to_trace(name=args.trace_name or mp.name, image=args.ref)
        trace.save(args.record)
        print(f"trace: {len(trace)} ops, {trace.bytes_read} bytes read -> {args.record}", flush=True)
    return 0


def add_mount_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="REF", help="image reference (HOST[:PORT]/REPO:TAG) or a local directory")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("--record", metavar="TRACE", default=None, help="write every open/read/stat as a Trace")
    p.add_argument("--trace-name", default=None, help="name stored in the trace header")
    p.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    p.add_argument("--single-threaded", action="store_true", help="serve one request at a time")
    p.add_argument("--creds", metavar="USER:PASS", default=None, help="registry credentials")
    p.add_argument("--insecure", action="store_true", help="plain HTTP for non-loopback registries")
    p.add_argument("--granularity", choices=["chunk", "block"], default="chunk", help="lazy fetch unit")
    p.add_argument("--cache-dir", metavar="DIR", default=None, help="on-disk chunk cache")
    p.add_argument("--background", action="store_true", help="fetch the rest of each layer in the background")
    p.add_argument(
        "--attr-timeout", type=float, default=1.0, metavar="SECONDS", help="kernel attribute/entry cache time"
    )
    p.add_argument("--kernel-cache", action="store_true", help="keep file pages cached across opens")
    p.set_defaults(func=run_mount)


def add_mount_parser(lazy_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = lazy_subparsers.add_parser("mount", help="mount an image read-only through FUSE (libfuse 3)")
    add_mount_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.fuse", description=__doc__.splitlines()[0])
    add_mount_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EmulatorError as e:
        print(f"lazylab: error: {e}", file=sys.stderr)
        return 2
