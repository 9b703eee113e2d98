"""Fixtures for the experiments' integration tests: a hermetic real-image cache (LAZYLAB_CACHE)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

# `tests.helpers` needs the repository root on sys.path (as in tests/integration/realimages).
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import pytest


@pytest.fixture(scope="module")
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """LAZYLAB_CACHE pointed at a fresh directory for one test module (its tests share the builds)."""
    cache = tmp_path_factory.mktemp("lazylab-cache")
    old = os.environ.get("LAZYLAB_CACHE")
    os.environ["LAZYLAB_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("LAZYLAB_CACHE", None)
    else:
        os.environ["LAZYLAB_CACHE"] = old
