"""`serve(store_dir, ...)`: mount the Additional Layer Store and block until unmounted.

Unmounts cleanly on SIGINT/SIGTERM/SIGHUP (libfuse's handlers) or `fusermount3 -u`. Not `ro`
(see `operations`); `default_permissions` lets the kernel enforce the 0500/0400 modes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from emulator.als.store import AdditionalLayerStore
from emulator.fuse.mount import FuseUnavailableError, MountError


def serve(
    store: AdditionalLayerStore,
    store_dir: str | os.PathLike[str],
    *,
    on_ready: Callable[[], None] | None = None,
    allow_other: bool = False,
) -> None:
    mp = Path(store_dir)
    if not mp.is_dir():
        raise MountError(f"store directory {mp} is not a directory")
    if not os.path.exists("/dev/fuse"):
        raise FuseUnavailableError("/dev/fuse is missing")
    try:
        import mfusepy
    except (ImportError, OSError) as e:
        raise FuseUnavailableError(f"cannot load libfuse through mfusepy: {e}") from None
    from emulator.als.operations import AlsOperations

    ops = AlsOperations(store, on_ready=on_ready)
    try:
        mfusepy.FUSE(
            ops,
            str(mp),
            foreground=True,
            default_permissions=True,
            allow_other=allow_other,
            use_ino=True,
            fsname="lazylab-als",
            subtype="lazylab-als",
            attr_timeout=1.0,
            entry_timeout=1.0,
        )
    except RuntimeError as e:
        if not ops.initialized:
            raise MountError(f"mounting {mp} failed (libfuse status {e})") from None
