"""Layer tars from directories, and re-ordering a tar for prefetch (eStargz §3.5 of the formats spec).

`write_tree_tar` turns a directory into a deterministic PAX tar: entries sorted by path, mtimes
(whole seconds) and uid/gid/mode taken from the files, user/group names left empty, xattrs where
readable, symlinks stored as links (never followed), hardlinks as `1` entries pointing at the
first path of the inode, devices and fifos kept; sockets are refused. `source_tar` accepts a
directory or an existing tar (kept byte for byte). `prioritize` rewrites a tar so that listed
paths (with their parent directories and hardlink targets) come first, then
`.prefetch.landmark`, then everything else in the original order.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from imageformat.errors import FormatError, UnsafePathError, UnsupportedEntryError
from imageformat.toc import normalize_path

PREFETCH_LANDMARK = ".prefetch.landmark"
NO_PREFETCH_LANDMARK = ".no.prefetch.landmark"
LANDMARK_CONTENT = b"\x0f"
LANDMARKS = (PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK)
ESTARGZ_TOC_NAME = "stargz.index.json"

_SUPPORTED_TYPES = {
    tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE,
    tarfile.BLKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE,
}


class TreeError(FormatError):
    """A source tree or tar that cannot be read (permissions, not a tar, bad prioritize list)."""


def _xattrs(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return out
    for name in names:
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def _walk_sorted(root: Path) -> list[str]:
    """Relative paths under root, parents before children, siblings sorted bytewise."""
    out: list[str] = []

    def visit(rel: str) -> None:
        full = os.path.join(root, rel) if rel else str(root)
        try:
            names = sorted(os.listdir(full), key=os.fsencode)
        except OSError as e:
            raise TreeError(f"cannot list {full}: {e.strerror}") from None
        for name in names:
            child = f"{rel}/{name}" if rel else name
            out.append(child)
            if stat.S_ISDIR(os.lstat(os.path.join(root, child)).st_mode):
                visit(child)

    visit("")
    return out


def write_tree_tar(src: Path, dst: BinaryIO) -> None:
    """A deterministic PAX tar of the directory `src` (see the module docstring)."""
    src = Path(src)
    if not src.is_dir():
        raise TreeError(f"{src}: not a directory")
    seen_inodes: dict[tuple[int, int], str] = {}
    start = _tell(dst)
    with tarfile.open(fileobj=dst, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for rel in _walk_sorted(src):
            full = os.path.join(src, rel)
            st = os.lstat(full)
            ti = tarfile.TarInfo(rel)
            ti.mtime = int(st.st_mtime)
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.uid, ti.gid = st.st_uid, st.st_gid
            ti.uname = ti.gname = ""
            ti.pax_headers = _xattrs(full)
            fmt = stat.S_IFMT(st.st_mode)
            if fmt == stat.S_IFSOCK:
                raise UnsupportedEntryError(f"{full}: sockets cannot be stored in a layer")
            if fmt == stat.S_IFREG and st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen_inodes:
                ti.type, ti.linkname = tarfile.LNKTYPE, seen_inodes[(st.st_dev, st.st_ino)]
                tf.addfile(ti)
                continue
            if fmt == stat.S_IFREG:
                if st.st_nlink > 1:
                    seen_inodes[(st.st_dev, st.st_ino)] = rel
                ti.type, ti.size = tarfile.REGTYPE, st.st_size
                try:
                    with open(full, "rb") as f:
                        tf.addfile(ti, f)
                except OSError as e:
                    raise TreeError(f"cannot read {full}: {e.strerror}") from None
            elif fmt == stat.S_IFDIR:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif fmt == stat.S_IFLNK:
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(full)
                tf.addfile(ti)
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                ti.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tf.addfile(ti)
            elif fmt == stat.S_IFIFO:
                ti.type = tarfile.FIFOTYPE
                tf.addfile(ti)
            else:
                raise UnsupportedEntryError(f"{full}: unsupported file type {fmt:o}")
    _drop_record_padding(dst, start, tf)


def _tell(f: BinaryIO) -> int | None:
    try:
        return f.tell() if f.seekable() else None
    except (OSError, AttributeError):
        return None


def _drop_record_padding(dst: BinaryIO, start: int | None, tf: tarfile.TarFile) -> None:
    """End the tar right after its two zero blocks, as Go/Docker/BuildKit tars do.

    Python's tarfile pads to a 10 KiB record; containers/storage <= 1.43 drops such padding
    (formats spec §1.9) and sometimes fails on it, so our tars carry none.
    """
    if start is not None:  # tf.offset: absolute position just past the end-of-archive blocks
        dst.truncate(tf.offset)
        dst.seek(tf.offset)


def check_member(ti: tarfile.TarInfo) -> str:
    """The member's normalized path, or a specific error for entries a layer must not hold."""
    if ti.type not in _SUPPORTED_TYPES or ti.issparse():
        raise UnsupportedEntryError(f"tar entry {ti.name!r}: unsupported type {ti.type!r}")
    try:
        path = normalize_path(ti.name)
    except ValueError as e:
        raise UnsafePathError(str(e)) from None
    if ti.type == tarfile.LNKTYPE:
        try:
            normalize_path(ti.linkname)
        except ValueError:
            raise UnsafePathError(f"hardlink {ti.name!r} points outside the layer: {ti.linkname!r}") from None
    return path


def read_members(src: BinaryIO) -> list[tarfile.TarInfo]:
    """All members of a seekable tar, validated with `check_member`."""
    try:
        tf = tarfile.open(fileobj=src, mode="r:")
        members = tf.getmembers()
    except tarfile.TarError as e:
        raise TreeError(f"not a readable tar: {e}") from None
    if tf.pax_headers:
        raise UnsupportedEntryError("tar has a PAX global header (unsupported by zstd:chunked writers)")
    for ti in members:
        check_member(ti)
    return members


def source_tar(src: Path, dst: BinaryIO) -> None:
    """The layer tar for SRC: a directory is archived; a tar file is checked and copied unchanged."""
    src = Path(src)
    if src.is_dir():
        write_tree_tar(src, dst)
        return
    if not src.is_file():
        raise TreeError(f"{src}: neither a directory nor a tar file")
    with open(src, "rb") as f:
        read_members(f)
        f.seek(0)
        shutil.copyfileobj(f, dst, 1 << 20)


def landmark_info(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime, ti.uname, ti.gname = len(LANDMARK_CONTENT), 0, 0, "", ""
    return ti


def prioritize(src: BinaryIO, dst: BinaryIO, paths: Sequence[str]) -> None:
    """Rewrite the tar `src` into `dst` with `paths` first, then a landmark, then the rest.

    With an empty `paths`, `.no.prefetch.landmark` is written first instead. Existing landmarks
    and a `stargz.index.json` are dropped; for a path stored twice the last copy is kept.
    Listed paths that the tar lacks raise TreeError.
    """
    members = read_members(src)
    last: dict[str, tarfile.TarInfo] = {}
    for ti in members:
        last[normalize_path(ti.name)] = ti
    order = [ti for ti in members if last[normalize_path(ti.name)] is ti
             and normalize_path(ti.name) not in (*LANDMARKS, ESTARGZ_TOC_NAME)]
    first: dict[str, None] = {}

    def want(path: str, depth: int = 0) -> None:
        if path in first or depth > 64:
            return
        parent = os.path.dirname(path)
        if parent:
            want(parent, depth + 1)
        ti = last.get(path)
        if ti is None:
            return
        if ti.type == tarfile.LNKTYPE:
            want(normalize_path(ti.linkname), depth + 1)
        first[path] = None

    for raw in paths:
        try:
            path = normalize_path(raw)
        except ValueError as e:
            raise UnsafePathError(f"prioritize list: {e}") from None
        if path not in last:
            raise TreeError(f"prioritize list names {raw!r}, which the layer does not contain")
        want(path)
    start = _tell(dst)
    with tarfile.open(fileobj=dst, mode="w", format=tarfile.PAX_FORMAT) as out:
        tf = tarfile.open(fileobj=src, mode="r:")

        def copy(ti: tarfile.TarInfo) -> None:
            out.addfile(ti, tf.extractfile(ti) if ti.isreg() else None)

        if not first:
            out.addfile(landmark_info(NO_PREFETCH_LANDMARK), _bytes_io(LANDMARK_CONTENT))
        for path in first:
            copy(last[path])
        if first:
            out.addfile(landmark_info(PREFETCH_LANDMARK), _bytes_io(LANDMARK_CONTENT))
        for ti in order:
            if normalize_path(ti.name) not in first:
                copy(ti)
    _drop_record_padding(dst, start, out)


def strip_estargz_entries(src: BinaryIO, dst: BinaryIO) -> None:
    """Rewrite a decompressed eStargz tar without its TOC entry and landmarks (for re-encoding)."""
    members = read_members(src)
    src.seek(0)
    tf = tarfile.open(fileobj=src, mode="r:")
    start = _tell(dst)
    with tarfile.open(fileobj=dst, mode="w", format=tarfile.PAX_FORMAT) as out:
        for ti in members:
            if normalize_path(ti.name) not in (*LANDMARKS, ESTARGZ_TOC_NAME):
                out.addfile(ti, tf.extractfile(ti) if ti.isreg() else None)
    _drop_record_padding(dst, start, out)


def _bytes_io(data: bytes) -> BinaryIO:
    return io.BytesIO(data)


def read_prioritize_file(path: Path) -> list[str]:
    """One path per line; blank lines and `#` comments ignored."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise TreeError(f"cannot read prioritize list {path}: {e.strerror}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


__all__ = [
    "ESTARGZ_TOC_NAME",
    "LANDMARKS",
    "LANDMARK_CONTENT",
    "NO_PREFETCH_LANDMARK",
    "PREFETCH_LANDMARK",
    "TreeError",
    "check_member",
    "landmark_info",
    "prioritize",
    "read_members",
    "read_prioritize_file",
    "source_tar",
    "strip_estargz_entries",
    "write_tree_tar",
]
