"""Test helpers shared by every area."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of a real client/tool; skip when truly absent, but fail in CI (a skip there hides breakage)."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed (make test installs it with apt)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def require_fuse() -> None:
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        msg = "/dev/fuse or fusermount3 (Debian fuse3) is missing"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_root(why: str = "chroot needs root") -> None:
    """CI runs as root; a developer's unprivileged run skips (and CI fails) instead of erroring."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)


def unavailable(why: str) -> None:
    """Something a test needs is missing here: skip locally, fail in CI (make test installs it)."""
    if IN_CI:
        pytest.fail(why)
    pytest.skip(why)
