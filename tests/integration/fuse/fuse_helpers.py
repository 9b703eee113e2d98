"""FUSE test helpers: a rich source tree, and mounting a view in a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import require_fuse  # noqa: E402


@dataclass
class Mounted:
    proc: subprocess.Popen[str]
    mountpoint: Path
    trace: Path | None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> str:
        """Signal the server, wait for it to unmount and exit; its remaining stdout."""
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=timeout_s)
        return out


LAZYLAB_MOUNT = ["-m", "lazylab.cli", "lazy", "mount"]


def start_mount(
    args: list[str],
    mountpoint: Path,
    *,
    trace: Path | None = None,
    timeout_s: float = 60,
    command: list[str] | None = None,
) -> Mounted:
    """Run `python -m emulator.fuse ARGS MOUNTPOINT` (or `command`); return once it printed `mounted`."""
    require_fuse()
    mountpoint.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, *(command or ["-m", "emulator.fuse"]), *args, str(mountpoint)]
    if trace is not None:
        cmd += ["--record", str(trace)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    line = proc.stdout.readline() if proc.stdout else ""  # blocks until the kernel's INIT arrived
    if not line.startswith("mounted"):
        proc.kill()
        _, err = proc.communicate(timeout=timeout_s)
        pytest.fail(f"mount did not come up: {line!r} {err[-2000:]}")
    return Mounted(proc=proc, mountpoint=mountpoint, trace=trace)


def make_rich_tree(root: Path, seed: int = 11) -> Path:
    """Files of many kinds and sizes, links, xattrs, a device, a fifo; deterministic."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "empty-dir").mkdir()
    (root / "etc/hostname").write_bytes(b"lazylab\n")
    (root / "etc/empty").write_bytes(b"")
    (root / "usr/bin/big").write_bytes(rng.integers(0, 256, 1_500_000, dtype=np.uint8).tobytes())
    (root / "usr/bin/big").chmod(0o755)
    (root / "usr/share").mkdir()
    (root / "usr/share/text").write_bytes(b"line\n" * 50_000)
    os.link(root / "usr/share/text", root / "usr/share/text-hardlink")
    os.symlink("../share/text", root / "usr/bin/rel-link")
    os.symlink("/etc/hostname", root / "abs-link")
    os.symlink("missing-target", root / "dangling")
    (root / "etc/setuid").write_bytes(b"#!/bin/sh\n")
    (root / "etc/setuid").chmod(0o4755)
    os.chown(root / "etc/hostname", 1000, 1001)
    os.setxattr(root / "etc/hostname", "user.lazylab", b"\x00binary\xff")
    os.mknod(root / "etc/null", 0o666 | 0o020000, os.makedev(1, 3))
    os.mkfifo(root / "etc/fifo")
    os.utime(root / "usr/share/text", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return root
