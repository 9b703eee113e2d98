"""Fixtures for the Additional Layer Store tests (helpers live in als_helpers.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from als_helpers import REPO, Podman, ServedStore

from tests.helpers import require_fuse


@pytest.fixture
def als_store(tmp_path: Path) -> Iterator[ServedStore]:
    """`lazylab store serve STORE_DIR` in a child process, up once it printed `serving`."""
    require_fuse()
    path = tmp_path / "store"
    path.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lazylab.cli", "store", "serve", "-v", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("serving"):
        proc.kill()
        pytest.fail(f"store did not come up: {line!r} {proc.communicate()[1][-2000:]}")
    served = ServedStore(proc=proc, path=path)
    yield served
    served.stop()


@pytest.fixture
def podman_factory(tmp_path: Path) -> Iterator[list[Podman]]:
    made: list[Podman] = []
    yield made
    for p in reversed(made):
        p.cleanup()
