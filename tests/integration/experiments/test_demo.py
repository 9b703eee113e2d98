"""`lazylab demo` (the quickstart) through the real command line, on the small busybox image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import require_tool

LAZYLAB = [sys.executable, "-c", "import sys; from lazylab.cli import main; sys.exit(main())"]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "LAZYLAB_CACHE": str(cache), "COLUMNS": "200"}


@pytest.mark.timeout(240)
def test_demo_prints_four_modes_both_engines_and_writes_the_plot(image_cache: Path, tmp_path: Path) -> None:
    require_tool("busybox")
    out = subprocess.run([*LAZYLAB, "demo", "--image", "busybox", "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, env=_env(image_cache), timeout=220,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    for mode in ("full", "partial", "lazy", "lazy-prefetch"):
        assert f"│ {mode} " in out.stdout
    assert "ready error" in out.stdout and "median |error| of time to ready" in out.stdout
    assert (tmp_path / "demo.png").stat().st_size > 1000


def test_demo_bad_input_is_one_line(image_cache: Path, tmp_path: Path) -> None:
    out = subprocess.run([*LAZYLAB, "demo", "--link-mbit", "0", "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, env=_env(image_cache), timeout=60)
    assert out.returncode != 0
    assert "link_bytes_per_s" in out.stderr and "Traceback" not in out.stderr
