"""Mounting a view: `mount(view, mountpoint, ...)` blocks until the file system is unmounted.

libfuse 3 (`fuse_main`) installs handlers for SIGINT, SIGTERM and SIGHUP that end the session
and unmount; so Ctrl-C, `kill -TERM` and `fusermount3 -u MOUNTPOINT` all unmount cleanly and
make `mount()` return. Read-only (`ro`), kernel permission checks on (`default_permissions`),
inode numbers from the view (`use_ino`, so hard links share one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from emulator.errors import EmulatorError
from emulator.fuse.recorder import TraceRecorder

if TYPE_CHECKING:
    from emulator.fuse.operations import FuseStats
from emulator.view import FileSystemView


class FuseUnavailableError(EmulatorError):
    """libfuse 3 or /dev/fuse is missing (Debian: apt-get install fuse3)."""


class MountError(EmulatorError):
    """The mount point is unusable or the mount failed."""


def mount(
    view: FileSystemView,
    mountpoint: str | os.PathLike[str],
    *,
    record: TraceRecorder | None = None,
    foreground: bool = True,
    on_ready: Callable[[], None] | None = None,
    allow_other: bool = False,
    single_threaded: bool = False,
    fsname: str = "lazylab",
    attr_timeout_s: float = 1.0,
    kernel_cache: bool = False,
) -> FuseStats:
    """Serve `view` at `mountpoint` until unmounted. `on_ready` runs once the kernel sent INIT.

    `foreground=False` lets libfuse daemonize (fork): only safe before any thread was started
    (the lazy store runs a loop thread), so the CLI always stays in the foreground.
    `kernel_cache` keeps file pages in the kernel's page cache across opens (right for an
    immutable image, but a recorded trace then misses re-reads); off by default, so every open
    of a file reaches the view, as a program's accesses would on a cold node.
    Returns the FUSE operations served and their CPU time (`FuseStats`).
    """
    mp = Path(mountpoint)
    if not mp.is_dir():
        raise MountError(f"mount point {mp} is not a directory")
    if not os.path.exists("/dev/fuse"):
        raise FuseUnavailableError("/dev/fuse is missing")
    try:
        import mfusepy
    except (ImportError, OSError) as e:
        raise FuseUnavailableError(f"cannot load libfuse through mfusepy: {e}") from None
    from emulator.fuse.operations import ViewOperations

    ops = ViewOperations(view, record=record, on_ready=on_ready)
    try:
        mfusepy.FUSE(
            ops,
            str(mp),
            foreground=foreground,
            nothreads=single_threaded,
            ro=True,
            default_permissions=True,
            allow_other=allow_other,
            use_ino=True,
            fsname=fsname,
            subtype="lazylab",
            attr_timeout=attr_timeout_s,
            entry_timeout=attr_timeout_s,
            kernel_cache=kernel_cache,
        )
    except RuntimeError as e:
        # libfuse reports a session ended by SIGINT/SIGTERM/SIGHUP as a non-zero status; after a
        # successful INIT that is the normal, clean way out.
        if not ops.initialized:
            raise MountError(f"mounting {mp} failed (libfuse status {e})") from None
    return ops.stats
