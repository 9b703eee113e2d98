"""A view through a real FUSE mount (libfuse 3) equals its source: stat, readdir, links, xattrs, bytes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from fuse_helpers import LAZYLAB_MOUNT, make_rich_tree, start_mount

from startup.trace import Op, Trace
from tests.helpers import require_tool

pytestmark = pytest.mark.fuse


def walk(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def meta(p: Path) -> tuple:
    s = os.lstat(p)
    return (
        s.st_mode,
        s.st_uid,
        s.st_gid,
        s.st_nlink,
        s.st_mtime_ns,
        s.st_rdev,
        s.st_size if not stat.S_ISDIR(s.st_mode) else None,
    )


def test_mount_equals_source_and_records_a_trace(tmp_path, mounter):
    src = make_rich_tree(tmp_path / "src")
    mnt = tmp_path / "mnt"
    m = start_mount([str(src)], mnt, trace=tmp_path / "t.trace")
    mounter.append(m)
    assert os.path.ismount(mnt)
    assert walk(mnt) == walk(src)
    for rel in walk(src):
        a, b = src / rel, mnt / rel
        assert meta(b) == meta(a), rel
        if a.is_symlink():
            assert os.readlink(b) == os.readlink(a)
        elif a.is_file():
            assert b.read_bytes() == a.read_bytes(), rel
        if not a.is_symlink():
            assert sorted(os.listxattr(b)) == sorted(os.listxattr(a)), rel
    assert os.getxattr(mnt / "etc/hostname", "user.lazylab") == b"\x00binary\xff"
    with pytest.raises(OSError) as e:
        os.getxattr(mnt / "etc/hostname", "user.absent")
    assert e.value.errno == 61  # ENODATA
    # hard links share one inode; symlinks resolve inside the mount
    assert os.stat(mnt / "usr/share/text").st_ino == os.stat(mnt / "usr/share/text-hardlink").st_ino
    assert (mnt / "usr/bin/rel-link").read_bytes() == (src / "usr/share/text").read_bytes()
    # offsets: a read in the middle of a file
    with open(mnt / "usr/bin/big", "rb") as f:
        f.seek(1_000_003)
        assert f.read(10_000) == (src / "usr/bin/big").read_bytes()[1_000_003:1_010_003]
    # read-only
    with pytest.raises(OSError) as e:
        open(mnt / "etc/hostname", "wb")
    assert e.value.errno == 30  # EROFS
    with pytest.raises(OSError):
        (mnt / "new").write_bytes(b"x")
    out = m.stop(signal.SIGTERM)
    assert m.proc.returncode == 0 and not os.path.ismount(mnt)
    assert "trace:" in out
    trace = Trace.load(tmp_path / "t.trace")
    reads = [o for o in trace if o.op is Op.READ and o.path == "usr/bin/big"]
    assert any(o.offset <= 1_000_003 < o.offset + o.length for o in reads)
    assert sum(o.length for o in reads) >= 1_500_000  # read fully once, then the 10 kB window
    assert {Op.STAT, Op.LISTDIR, Op.OPEN, Op.READ, Op.READLINK} <= {o.op for o in trace}
    assert all(o.think_s >= 0 for o in trace)


def test_sigint_unmounts_cleanly(tmp_path, mounter):
    src = make_rich_tree(tmp_path / "src")
    mnt = tmp_path / "mnt"
    m = start_mount([str(src)], mnt)
    mounter.append(m)
    assert (mnt / "etc/hostname").read_bytes() == b"lazylab\n"
    m.stop(signal.SIGINT)
    assert m.proc.returncode == 0 and not os.path.ismount(mnt)
    assert list(mnt.iterdir()) == []


def test_missing_source_is_one_line_error(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(
        ["python", "-m", "emulator.fuse", "not-a-reference", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        check=False,
        env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "lazylab: error:" in r.stderr


@pytest.mark.interop
@pytest.mark.parametrize("fmt", ["estargz", "zstd:chunked"])
def test_lazy_mount_equals_source(tmp_path, mounter, fmt):
    """The same rich tree as an image in registry_mock, through `lazylab lazy mount`."""
    from imageformat.build import build_image
    from registry_mock.app import running_registry

    skopeo = require_tool("skopeo")
    src = make_rich_tree(tmp_path / "src")
    build_image(src, tmp_path / "oci", "v1", fmt)
    with running_registry() as reg:
        ref = f"{reg.address}/lab/rich:v1"
        subprocess.run(
            [skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'oci'}:v1", f"docker://{ref}"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        m = start_mount([ref], tmp_path / "mnt", command=LAZYLAB_MOUNT)
        mounter.append(m)
        mnt = m.mountpoint
        assert walk(mnt) == walk(src)
        for rel in walk(src):
            a, b = os.lstat(src / rel), os.lstat(mnt / rel)
            assert (b.st_mode, b.st_uid, b.st_gid, b.st_rdev) == (a.st_mode, a.st_uid, a.st_gid, a.st_rdev), (
                rel
            )
            assert b.st_mtime_ns // 10**9 == a.st_mtime_ns // 10**9, rel  # tar keeps whole seconds here
            if stat.S_ISLNK(a.st_mode):
                assert os.readlink(mnt / rel) == os.readlink(src / rel)
            elif stat.S_ISREG(a.st_mode):
                assert b.st_size == a.st_size and (mnt / rel).read_bytes() == (src / rel).read_bytes(), rel
                assert b.st_nlink == a.st_nlink, rel
        assert os.getxattr(mnt / "etc/hostname", "user.lazylab") == b"\x00binary\xff"
        assert os.stat(mnt / "usr/share/text").st_ino == os.stat(mnt / "usr/share/text-hardlink").st_ino
        m.stop(signal.SIGTERM)
        assert m.proc.returncode == 0 and not os.path.ismount(mnt)
