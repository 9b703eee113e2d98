"""A minimal root file system from Debian's busybox-static: /bin/busybox plus its applet links."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

MOTD = b"hello from a lazily mounted busybox\n"


def busybox_binary() -> str | None:
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(cand):
            return cand
    return None


def make_busybox_root(root: Path, busybox: str) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir()
    shutil.copy2(busybox, root / "bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        if name != "busybox":
            os.symlink("busybox", root / "bin" / name)
    (root / "etc/motd").write_bytes(MOTD)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root
