"""The mount counts the FUSE operations it served and the CPU time spent in its handlers."""

from __future__ import annotations

import os
import re
import signal

import pytest
from fuse_helpers import make_rich_tree, start_mount

pytestmark = pytest.mark.fuse


def test_unmount_reports_operations_and_cpu(tmp_path, mounter):
    src = make_rich_tree(tmp_path / "src")
    mnt = tmp_path / "mnt"
    m = start_mount([str(src), "--attr-timeout", "0"], mnt)
    mounter.append(m)
    for _ in range(20):
        os.stat(mnt / "etc/hostname")
    assert (mnt / "usr/bin/big").read_bytes() == (src / "usr/bin/big").read_bytes()
    out = m.stop(signal.SIGTERM)
    assert m.proc.returncode == 0
    found = re.search(r"fuse: (\d+) operations, ([0-9.]+) s CPU", out)
    assert found, out
    ops, cpu_s = int(found.group(1)), float(found.group(2))
    assert ops >= 20 + 3  # the stats (attr cache off), then open + reads of a 1.5 MB file
    assert cpu_s > 0
