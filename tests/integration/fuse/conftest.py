"""Fixtures for FUSE tests (helpers live in fuse_helpers.py: a conftest is not importable by name)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from fuse_helpers import Mounted


@pytest.fixture
def mounter() -> Iterator[list[Mounted]]:
    """Collects mounts; whatever is still mounted at the end is unmounted and reaped."""
    mounts: list[Mounted] = []
    yield mounts
    for m in mounts:
        if os.path.ismount(m.mountpoint):
            subprocess.run(["fusermount3", "-u", str(m.mountpoint)], check=False)
        if m.proc.poll() is None:
            try:
                m.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.communicate()
