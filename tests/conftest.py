"""Fixtures shared by every test area."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def image_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> Path:
    """LAZYLAB_CACHE pointed at a fresh directory for one test module (its tests share the builds)."""
    cache = tmp_path_factory.mktemp("lazylab-cache")
    monkeypatch_module.setenv("LAZYLAB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp
