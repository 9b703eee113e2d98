"""The large Debian image (debootstrap, minutes, network): on demand only (`pytest -m slow`).

Uses the real image cache (LAZYLAB_CACHE or ~/.cache/lazylab), so a second run is quick.
"""

from __future__ import annotations

import os

import pytest

from experiments import realimages
from experiments.record_traces import DEBIAN_LARGE_FILE, TRACE_SPECS, load_shipped_trace, missing_paths
from startup.trace import Op
from tests.helpers import require_root, require_tool

pytestmark = pytest.mark.slow


def test_debian_image_and_its_traces() -> None:
    require_root()
    require_tool("debootstrap")
    built = realimages.image_record("debian", "zstd:chunked")
    assert built.file_bytes > 200_000_000  # "several hundred MB"
    tocs = realimages.load_tocs(built.path, "debian")
    for name, spec in TRACE_SPECS.items():
        if spec.image == "debian":
            assert missing_paths(load_shipped_trace(name), tocs) == [], name
    size = tocs[0].by_path[DEBIAN_LARGE_FILE].size
    reads = [
        o
        for o in load_shipped_trace("debian_read_large_file")
        if o.op is Op.READ and o.path == DEBIAN_LARGE_FILE
    ]
    assert (
        sum(o.length for o in reads)
        == size
        == os.path.getsize(realimages.prepare_tree("debian") / DEBIAN_LARGE_FILE)
    )
