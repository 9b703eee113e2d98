"""Directory -> deterministic tar, and prioritized re-ordering with landmarks."""

from __future__ import annotations

import io
import os
import socket
import tarfile

import pytest
from imgtrees import Node, sample_nodes, tar_bytes

from imageformat.errors import UnsafePathError, UnsupportedEntryError
from imageformat.tree import TreeError, prioritize, read_members, source_tar, write_tree_tar


def _tree(root):  # type: ignore[no-untyped-def]
    (root / "b/sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "b/sub/data").write_bytes(b"\x00" * 5000 + b"x")
    (root / "b/empty").write_bytes(b"")
    os.symlink("../a.txt", root / "b/link")
    os.symlink("/etc/passwd", root / "b/abs")  # stored as a link, never followed
    os.link(root / "a.txt", root / "b/hard")
    os.mkfifo(root / "fifo")
    os.chmod(root / "a.txt", 0o4755)
    try:
        os.setxattr(root / "a.txt", "user.note", b"\x00\xffbin")
    except OSError:
        pass
    return root


def test_directory_tar_is_deterministic_and_complete(tmp_path):
    root = _tree(tmp_path / "t")
    one, two = io.BytesIO(), io.BytesIO()
    write_tree_tar(root, one)
    write_tree_tar(root, two)
    assert one.getvalue() == two.getvalue()
    tf = tarfile.open(fileobj=io.BytesIO(one.getvalue()))
    members = {m.name: m for m in tf.getmembers()}
    assert list(members) == [
        "a.txt",
        "b",
        "b/abs",
        "b/empty",
        "b/hard",
        "b/link",
        "b/sub",
        "b/sub/data",
        "fifo",
    ]
    assert members["a.txt"].mode == 0o4755 and members["a.txt"].uid == os.getuid()
    assert members["b/hard"].islnk() and members["b/hard"].linkname == "a.txt"
    assert members["b/abs"].issym() and members["b/abs"].linkname == "/etc/passwd"
    assert members["fifo"].isfifo()
    assert members["a.txt"].mtime == int(os.lstat(root / "a.txt").st_mtime)
    if "SCHILY.xattr.user.note" in members["a.txt"].pax_headers:
        raw = members["a.txt"].pax_headers["SCHILY.xattr.user.note"]
        assert raw.encode("utf-8", "surrogateescape") == b"\x00\xffbin"
    assert tf.extractfile("b/sub/data").read() == b"\x00" * 5000 + b"x"


def test_sockets_are_refused(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(root / "sock"))
        with pytest.raises(UnsupportedEntryError, match="sockets"):
            write_tree_tar(root, io.BytesIO())
    finally:
        s.close()


def test_source_tar_keeps_a_tar_byte_for_byte_and_rejects_hostile_ones(tmp_path):
    tar = tar_bytes(sample_nodes())
    (tmp_path / "in.tar").write_bytes(tar)
    out = io.BytesIO()
    source_tar(tmp_path / "in.tar", out)
    assert out.getvalue() == tar
    (tmp_path / "evil.tar").write_bytes(tar_bytes([Node("../../escape", "reg", data=b"x")]))
    with pytest.raises(UnsafePathError):
        source_tar(tmp_path / "evil.tar", io.BytesIO())
    (tmp_path / "evil2.tar").write_bytes(tar_bytes([Node("x", "hardlink", link="../../etc/shadow")]))
    with pytest.raises(UnsafePathError):
        source_tar(tmp_path / "evil2.tar", io.BytesIO())
    (tmp_path / "junk.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(TreeError):
        source_tar(tmp_path / "junk.tar", io.BytesIO())
    with pytest.raises(TreeError):
        source_tar(tmp_path / "missing", io.BytesIO())


def test_prioritize_orders_parents_and_hardlink_targets_first():
    src = io.BytesIO(tar_bytes([*sample_nodes(), Node(".prefetch.landmark", "reg", data=b"\x0f")]))
    out = io.BytesIO()
    prioritize(src, out, ["usr/bin/hard", "etc/hello"])
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(out.getvalue())).getmembers()]
    assert names[:6] == ["usr", "usr/bin", "usr/bin/big", "usr/bin/hard", "etc", "etc/hello"]
    assert names[6] == ".prefetch.landmark" and names.count(".prefetch.landmark") == 1
    assert sorted(names[7:]) == sorted(n.path for n in sample_nodes() if n.path not in names[:6])
    with pytest.raises(TreeError, match="does not contain"):
        prioritize(io.BytesIO(src.getvalue()), io.BytesIO(), ["nope"])


def test_prioritize_without_a_list_marks_no_prefetch():
    out = io.BytesIO()
    prioritize(io.BytesIO(tar_bytes(sample_nodes())), out, [])
    out.seek(0)
    members = read_members(out)
    assert members[0].name == ".no.prefetch.landmark" and members[0].size == 1


def test_unsupported_entry_types_are_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "git"}) as tf:
        ti = tarfile.TarInfo("a")
        tf.addfile(ti, io.BytesIO(b""))
    (tmp_path / "global.tar").write_bytes(buf.getvalue())
    with pytest.raises(UnsupportedEntryError, match="global"):
        source_tar(tmp_path / "global.tar", io.BytesIO())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ti = tarfile.TarInfo("contiguous")
        ti.type = tarfile.CONTTYPE
        tf.addfile(ti, io.BytesIO(b""))
    (tmp_path / "cont.tar").write_bytes(buf.getvalue())
    with pytest.raises(UnsupportedEntryError):
        source_tar(tmp_path / "cont.tar", io.BytesIO())
