"""TraceRecorder: recorded FUSE operations -> a Trace whose think time is the gap between operations."""

import pytest

from emulator.fuse.operations import stat_to_attrs, view_path
from emulator.fuse.recorder import RecordedOp, TraceRecorder
from emulator.view import Stat
from imageformat.toc import EntryType
from startup.trace import Op


def test_think_time_is_the_gap_and_overlaps_count_zero():
    rec = TraceRecorder()
    rec.add(RecordedOp(op=Op.READ, path="b", offset=4096, length=10, start_s=10.5, end_s=10.6))
    rec.add(RecordedOp(op=Op.STAT, path="a", start_s=10.0, end_s=10.1))
    rec.add(RecordedOp(op=Op.OPEN, path="b", start_s=10.2, end_s=10.3))
    rec.add(RecordedOp(op=Op.READ, path="c", length=1, start_s=10.55, end_s=10.7))  # overlaps the read of b
    rec.add(RecordedOp(op=Op.STAT, path="gone", start_s=10.8, end_s=10.9, error=2))
    trace = rec.to_trace(name="t", image="img")
    assert [(o.op, o.path) for o in trace] == [(Op.STAT, "a"), (Op.OPEN, "b"), (Op.READ, "b"), (Op.READ, "c")]
    assert [o.think_s for o in trace] == pytest.approx([0.0, 0.1, 0.2, 0.0])
    assert trace.ops[2].offset == 4096 and trace.bytes_read == 11
    with_errors = TraceRecorder(include_errors=True)
    with_errors.add(RecordedOp(op=Op.STAT, path="gone", start_s=1.0, end_s=1.1, error=2))
    assert len(with_errors.to_trace()) == 1


def test_stat_attrs_carry_type_bits_devices_and_link_size():
    dev = stat_to_attrs(Stat(type=EntryType.CHAR, mode=0o620, size=0, rdev_major=1, rdev_minor=3), ino=7)
    assert dev["st_mode"] == 0o020620 and dev["st_rdev"] == (1 << 8) | 3 and dev["st_ino"] == 7
    link = stat_to_attrs(Stat(type=EntryType.SYMLINK, mode=0o777, size=0), ino=8, symlink_size=11)
    assert link["st_mode"] == 0o120777 and link["st_size"] == 11
    d = stat_to_attrs(Stat(type=EntryType.DIR, mode=0o755, size=0, nlink=1, mtime_ns=5), ino=9)
    assert d["st_mode"] == 0o040755 and d["st_nlink"] == 2 and d["st_mtime"] == 5
    assert view_path("/") == "." and view_path("/usr/bin/") == "usr/bin"
