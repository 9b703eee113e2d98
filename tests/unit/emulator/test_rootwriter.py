"""RootWriter (the full pull's extraction): overlay semantics, and no write ever lands outside the
root, also when a directory it already resolved is replaced by a symlink later in the layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.extract import ExtractError, RootWriter
from imageformat.toc import EntryType


def _write(data: bytes):  # type: ignore[no-untyped-def]
    return lambda fh: fh.write(data)


def test_layers_apply_with_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    w = RootWriter(tmp_path / "root")
    w.begin_layer()
    w.apply("etc", EntryType.DIR, mode=0o755)
    w.apply("etc/a", EntryType.REG, write=_write(b"a"))
    w.apply("etc/b", EntryType.REG, write=_write(b"b"))
    w.apply("opt/x/y", EntryType.REG, write=_write(b"y"))
    w.begin_layer()
    w.apply("etc/.wh.a", EntryType.REG)
    w.apply("opt/x/.wh..wh..opq", EntryType.REG)
    w.apply("opt/x/z", EntryType.REG, write=_write(b"z"))
    root = tmp_path / "root"
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["b"]
    assert sorted(p.name for p in (root / "opt" / "x").iterdir()) == ["z"]


def _writer_and_outside(tmp_path: Path) -> tuple[RootWriter, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    w = RootWriter(tmp_path / "root")
    w.begin_layer()
    return w, outside


def test_a_symlinked_parent_leading_out_of_the_root_is_refused(tmp_path: Path) -> None:
    w, outside = _writer_and_outside(tmp_path)
    w.apply("evil", EntryType.SYMLINK, link_name=str(outside))
    with pytest.raises(ExtractError, match="leading out of the root"):
        w.apply("evil/planted", EntryType.REG, write=_write(b"x"))
    assert list(outside.iterdir()) == []


def test_a_resolved_directory_replaced_by_an_escaping_symlink_is_seen(tmp_path: Path) -> None:
    w, outside = _writer_and_outside(tmp_path)
    w.apply("d/first", EntryType.REG, write=_write(b"1"))  # resolves (and remembers) d
    w.apply("d", EntryType.REG, write=_write(b"not a dir any more"))
    w.apply("d", EntryType.SYMLINK, link_name=str(outside))
    with pytest.raises(ExtractError, match="leading out of the root"):
        w.apply("d/second", EntryType.REG, write=_write(b"2"))
    assert list(outside.iterdir()) == []


def test_a_whiteout_of_a_resolved_directory_then_a_symlink_in_its_place_is_seen(tmp_path: Path) -> None:
    w, outside = _writer_and_outside(tmp_path)
    w.apply("lib/mod/a", EntryType.REG, write=_write(b"a"))
    w.begin_layer()
    w.apply("lib/.wh.mod", EntryType.REG)
    w.apply("lib/mod", EntryType.SYMLINK, link_name=str(outside))
    with pytest.raises(ExtractError):
        w.apply("lib/mod/b", EntryType.REG, write=_write(b"b"))
    assert list(outside.iterdir()) == []


def test_tar_member_names_with_dotdot_are_refused(tmp_path: Path) -> None:
    w = RootWriter(tmp_path / "root")
    w.begin_layer()
    with pytest.raises(ExtractError, match="unsafe member name"):
        w.apply("../escape", EntryType.REG, write=_write(b"x"))
    assert not (tmp_path / "escape").exists()
