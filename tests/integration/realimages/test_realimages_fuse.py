"""Recording a real trace: busybox's startup script run through a lazy FUSE mount served by registry_mock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from experiments import realimages
from experiments.record_traces import (
    TRACE_SPECS,
    RecordError,
    TraceSpec,
    load_shipped_trace,
    missing_paths,
    record_trace,
    trace_stats,
)
from startup.trace import Op
from tests.helpers import require_fuse, require_root, require_tool

pytestmark = pytest.mark.fuse


def test_busybox_script_trace_holds_the_scripts_reads(image_cache: Path) -> None:
    require_fuse()
    require_root()
    require_tool("busybox")
    trace = record_trace(TRACE_SPECS["busybox_shell_script"], fmt="zstd:chunked", timeout_s=120)
    assert trace.name == "busybox_shell_script" and trace.image == "busybox"
    read = {o.path for o in trace if o.op is Op.READ and o.length > 0}
    # the script itself, the files it sources/cats/hashes/heads, and the binary every applet execs
    assert {
        "app/start.sh",
        "etc/app.conf",
        "etc/motd",
        "etc/hostname",
        "usr/share/app/data.txt",
        "bin/busybox",
    } <= read
    assert "usr/share/app/unused.txt" not in read  # `find` lists it, nothing reads it
    shipped = load_shipped_trace("busybox_shell_script")
    assert read == {
        o.path for o in shipped if o.op is Op.READ and o.length > 0
    }  # the shipped trace is current
    assert any(o.op is Op.LISTDIR and o.path == "bin" for o in trace)  # `ls /bin`
    assert any(o.op is Op.READLINK and o.path.startswith("bin/") for o in trace)
    root = realimages.prepare_tree("busybox")
    motd = [o for o in trace if o.op is Op.READ and o.path == "etc/motd"]
    assert sum(o.length for o in motd) >= os.path.getsize(root / "etc/motd")
    built = realimages.image_record("busybox", "zstd:chunked")
    tocs = realimages.load_tocs(built.path, "busybox")
    assert missing_paths(trace, tocs) == []
    st = trace_stats(trace, tocs)
    assert 0 < st.fraction_read < 1 and st.files_read == len(read)


def test_a_failing_command_is_a_record_error_and_leaves_no_mount(image_cache: Path) -> None:
    require_fuse()
    require_root()
    require_tool("busybox")
    spec = TraceSpec(
        name="fails", image="busybox", argv=("/bin/sh", "-c", "cat /etc/motd; exit 3"), description=""
    )
    before = Path("/proc/self/mounts").read_text().count("lazylab-rec-")
    with pytest.raises(RecordError, match=r"failed in the mount \(3\)"):
        record_trace(spec, timeout_s=120)
    assert Path("/proc/self/mounts").read_text().count("lazylab-rec-") == before
