"""`lazylab lazy ls|stat|cat REF [PATH]`: quick looks into an image through the lazy store.

Only the TOCs and the chunks of the files asked for are fetched. `lazylab lazy mount` is
added by `emulator.fuse.cli.add_mount_parser` when the FUSE adapter is importable.
"""

from __future__ import annotations

import argparse
import stat as st
import sys
import time

from emulator.errors import EmulatorError
from emulator.lazyview import LazyOptions, LazyView, lazy_options_from, open_lazy_view
from imageformat.errors import FormatError
from imageformat.toc import EntryType
from lazylab import cli

for _err in (EmulatorError, FormatError):
    if _err not in cli.USER_ERRORS:
        cli.USER_ERRORS.append(_err)

_TYPE_CHAR = {
    EntryType.DIR: "d",
    EntryType.SYMLINK: "l",
    EntryType.CHAR: "c",
    EntryType.BLOCK: "b",
    EntryType.FIFO: "p",
    EntryType.REG: "-",
    EntryType.HARDLINK: "-",
}


def add_registry_options(p: argparse.ArgumentParser) -> None:
    """Options every command that talks to a registry shares."""
    p.add_argument("--creds", metavar="USER:PASS", help="registry credentials (Basic or bearer-token auth)")
    p.add_argument("--insecure", action="store_true", help="plain HTTP for non-loopback registries")
    p.add_argument(
        "--granularity",
        choices=["chunk", "block"],
        default="chunk",
        help="lazy fetch unit: TOC chunks, or 50,000-byte blob blocks as stargz-store",
    )
    p.add_argument("--cache-dir", metavar="DIR", help="on-disk chunk cache (default: memory only)")


def options_from(args: argparse.Namespace) -> LazyOptions:
    if args.creds:
        user, sep, password = args.creds.partition(":")
        if not sep or not user:
            raise cli.CliError(f"--creds (={args.creds!r}) must be USER:PASS")
        args.username, args.password = user, password
    return lazy_options_from(args)


def _view_call(fn, path: str):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except OSError as e:
        raise cli.CliError(f"{path}: {e.strerror or e}", status=1) from None


def _perm(mode: int, kind: EntryType) -> str:
    return _TYPE_CHAR.get(kind, "?") + st.filemode(mode)[1:]


def _line(view: LazyView, path: str, name: str) -> str:
    s = view.stat(path)
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(s.mtime_ns / 1e9)) if s.mtime_ns else "-"
    target = f" -> {view.readlink(path)}" if s.type is EntryType.SYMLINK else ""
    return f"{_perm(s.mode, s.type)} {s.nlink:>3} {s.uid:>5} {s.gid:>5} {s.size:>10} {when} {name}{target}"


def _ls(args: argparse.Namespace) -> int:
    with open_lazy_view(args.ref, options_from(args)) as view:
        path = args.path or "."
        s = _view_call(lambda: view.stat(path), path)
        if s.type is not EntryType.DIR:
            print(_line(view, path, path))
            return 0
        for name in _view_call(lambda: view.listdir(path), path):
            child = name if path in (".", "") else f"{path.rstrip('/')}/{name}"
            print(_line(view, child, name))
    return 0


def _stat(args: argparse.Namespace) -> int:
    with open_lazy_view(args.ref, options_from(args)) as view:
        s = _view_call(lambda: view.stat(args.path), args.path)
        print(f"  File: {args.path}")
        print(f"  Type: {s.type.value}  Size: {s.size}  Links: {s.nlink}  Inode: {s.ino}")
        print(f"  Mode: {_perm(s.mode, s.type)} ({s.mode:04o})  Uid: {s.uid}  Gid: {s.gid}")
        if s.mtime_ns:
            print(f"Modify: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(s.mtime_ns / 1e9))} UTC")
        if s.type is EntryType.SYMLINK:
            print(f"Target: {view.readlink(args.path)}")
        if s.type in (EntryType.CHAR, EntryType.BLOCK):
            print(f"Device: {s.rdev_major},{s.rdev_minor}")
        for k, v in sorted(s.xattrs.items()):
            print(f" Xattr: {k}={v!r}")
    return 0


def _cat(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    with open_lazy_view(args.ref, options_from(args)) as view:
        size = _view_call(lambda: view.stat(args.path), args.path).size
        offset = 0
        while offset < size or size == 0:
            data = _view_call(lambda at=offset: view.read(args.path, at, 1 << 20), args.path)
            if not data:
                break
            out.write(data)
            offset += len(data)
        out.flush()
        if args.stats:
            t = view.store.totals()
            print(
                f"fetched {t.bytes_total} bytes ({t.bytes_toc} TOC, {t.bytes_on_demand} on demand) in "
                f"{t.requests} requests, {t.ranges} ranges",
                file=sys.stderr,
            )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `lazy ls|stat|cat` (and `lazy mount` when emulator.fuse is available)."""
    p = sub.add_parser("lazy", help="look into an image through the lazy store (no full pull)")
    lazy_sub = p.add_subparsers(dest="lazy_command", metavar="ACTION")
    lazy_sub.required = True
    for name, func, help_text, needs_path in (
        ("ls", _ls, "list a directory (default: the root)", False),
        ("stat", _stat, "show one entry's metadata", True),
        ("cat", _cat, "write a file's content to stdout (fetching only its chunks)", True),
    ):
        sp = lazy_sub.add_parser(name, help=help_text)
        sp.add_argument("ref", metavar="REF", help="HOST[:PORT]/REPO[:TAG|@DIGEST]")
        if needs_path:
            sp.add_argument("path", metavar="PATH")
        else:
            sp.add_argument("path", metavar="PATH", nargs="?", default=".")
        add_registry_options(sp)
        if name == "cat":
            sp.add_argument("--stats", action="store_true", help="print bytes fetched to stderr")
        sp.set_defaults(func=func)
    try:
        from emulator.fuse.cli import add_mount_parser
    except ImportError:
        return
    add_mount_parser(lazy_sub)
