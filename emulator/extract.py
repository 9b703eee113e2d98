"""Materializing layers into one root directory (full and partial pulls), with overlay rules.

Layers are applied in order into `root`: `.wh.NAME` removes NAME, `.wh..wh..opq` empties the
directory of what lower layers put there, a non-directory replaces whatever was at its path.
Every path is confined to the root: names with `..` are rejected and no write follows a
symlink out of the root (parents are resolved and checked). Ownership is applied only when
running as root; devices are created only when allowed (else skipped, counted). eStargz's
`stargz.index.json` and landmark files are not extracted.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from emulator.errors import EmulatorError
from emulator.overlay import HIDDEN_ROOT_NAMES, OPAQUE, WHITEOUT_PREFIX
from imageformat.plain import DecompressedReader
from imageformat.toc import Compression, EntryType, normalize_path

COPY_BYTES = 1 << 20


class ExtractError(EmulatorError):
    """A layer that cannot be extracted safely (path escapes, unsupported member)."""


@dataclass
class RootWriter:
    """Applies one layer after another to `root` (a directory it owns)."""

    root: Path
    skipped_devices: int = 0
    _layer_paths: set[str] = field(default_factory=set)
    # parent directory -> its resolved host path: realpath() lstat()s every component, for every
    # entry (~40% of extracting a python image on tmpfs). Only a symlink created or anything
    # removed can change a resolution, and both clear it.
    _resolved: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = os.path.realpath(self.root)

    def begin_layer(self) -> None:
        self._layer_paths = set()

    def _host(self, path: str, *, make_parents: bool = True) -> str:
        parent = posixpath.dirname(path)
        real_parent = self._resolved.get(parent)
        if real_parent is None:
            host_parent = os.path.join(self._real_root, parent) if parent else self._real_root
            if make_parents and parent:
                os.makedirs(host_parent, mode=0o755, exist_ok=True)
            real_parent = os.path.realpath(host_parent)
            if real_parent != self._real_root and not real_parent.startswith(self._real_root + os.sep):
                raise ExtractError(f"{path!r}: a parent is a symlink leading out of the root")
            if os.path.isdir(real_parent):
                self._resolved[parent] = real_parent
        return os.path.join(real_parent, posixpath.basename(path))

    def _clear(self, host: str) -> None:
        if os.path.lexists(host) and not (os.path.isdir(host) and not os.path.islink(host)):
            self._resolved.clear()
            os.unlink(host)

    def _remove_tree(self, host: str) -> None:
        if os.path.isdir(host) and not os.path.islink(host):
            self._resolved.clear()
            shutil.rmtree(host)
        elif os.path.lexists(host):
            self._resolved.clear()
            os.unlink(host)

    def apply(
        self,
        name: str,
        kind: EntryType,
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime_s: float | None = None,
        link_name: str = "",
        dev: tuple[int, int] = (0, 0),
        write: Callable[[BinaryIO], None] | None = None,
    ) -> None:
        """Create one entry; `write(fh)` fills a regular file's content."""
        try:
            path = normalize_path(name)
        except ValueError:
            raise ExtractError(f"unsafe member name {name!r}") from None
        if path == ".":
            return
        base, parent = posixpath.basename(path), posixpath.dirname(path)
        if not parent and base in HIDDEN_ROOT_NAMES:
            return
        if base == OPAQUE:
            host_dir = self._host(path).rsplit(os.sep, 1)[0]
            for child in os.listdir(host_dir):
                rel = posixpath.join(parent, child) if parent else child
                if rel not in self._layer_paths:
                    self._remove_tree(os.path.join(host_dir, child))
            return
        if base.startswith(WHITEOUT_PREFIX):
            self._remove_tree(self._host(posixpath.join(parent, base[len(WHITEOUT_PREFIX) :])))
            return
        host = self._host(path)
        self._layer_paths.add(path)
        if kind is EntryType.DIR:
            if os.path.lexists(host) and not os.path.isdir(host):
                self._resolved.clear()
                os.unlink(host)
            os.makedirs(host, exist_ok=True)
        else:
            self._remove_tree(host) if os.path.isdir(host) and not os.path.islink(host) else self._clear(host)
            if kind is EntryType.REG:
                with open(host, "wb") as fh:
                    if write is not None:
                        write(fh)
            elif kind is EntryType.SYMLINK:
                self._resolved.clear()
                os.symlink(link_name, host)
            elif kind is EntryType.HARDLINK:
                try:
                    target = self._host(normalize_path(link_name), make_parents=False)
                except ValueError:
                    raise ExtractError(f"unsafe hardlink target {link_name!r}") from None
                os.link(target, host)
                return
            elif kind is EntryType.FIFO:
                os.mkfifo(host)
            elif kind in (EntryType.CHAR, EntryType.BLOCK):
                try:
                    flag = stat.S_IFCHR if kind is EntryType.CHAR else stat.S_IFBLK
                    os.mknod(host, flag | 0o600, os.makedev(*dev))
                except (PermissionError, OSError):
                    self.skipped_devices += 1
                    return
        if kind is not EntryType.SYMLINK:
            os.chmod(host, mode & 0o7777)
        if os.geteuid() == 0:
            try:
                os.lchown(host, uid, gid)
            except OSError:
                pass
        if mtime_s is not None:
            os.utime(host, (mtime_s, mtime_s), follow_symlinks=False)


_TAR_KINDS = {
    tarfile.REGTYPE: EntryType.REG,
    tarfile.AREGTYPE: EntryType.REG,
    tarfile.DIRTYPE: EntryType.DIR,
    tarfile.SYMTYPE: EntryType.SYMLINK,
    tarfile.LNKTYPE: EntryType.HARDLINK,
    tarfile.CHRTYPE: EntryType.CHAR,
    tarfile.BLKTYPE: EntryType.BLOCK,
    tarfile.FIFOTYPE: EntryType.FIFO,
}


def extract_layer_blob(blob_path: Path, compression: Compression, writer: RootWriter) -> tuple[str, int]:
    """Decompress and extract one layer blob file; returns (diff_id of the stream, bytes written)."""
    with open(blob_path, "rb") as raw:
        return extract_layer_stream(raw, compression, writer)


def extract_layer_stream(raw: BinaryIO, compression: Compression, writer: RootWriter) -> tuple[str, int]:
    """Decompress and extract a layer read sequentially from `raw`; returns (diff_id, bytes written)."""
    written = 0
    writer.begin_layer()
    reader = DecompressedReader(compression, raw)
    buffered = io.BufferedReader(reader, COPY_BYTES)
    try:
        with tarfile.open(fileobj=buffered, mode="r|") as tf:
            for ti in tf:
                kind = _TAR_KINDS.get(ti.type)
                if kind is None:
                    raise ExtractError(f"unsupported tar member type {ti.type!r} for {ti.name!r}")
                src = tf.extractfile(ti) if kind is EntryType.REG else None

                def write(fh: BinaryIO, src: IO[bytes] | None = src) -> None:
                    if src is not None:
                        shutil.copyfileobj(src, fh, COPY_BYTES)

                writer.apply(
                    ti.name,
                    kind,
                    mode=ti.mode,
                    uid=ti.uid,
                    gid=ti.gid,
                    mtime_s=float(ti.mtime),
                    link_name=ti.linkname,
                    dev=(ti.devmajor, ti.devminor),
                    write=write,
                )
                written += ti.size if kind is EntryType.REG else 0
    except tarfile.TarError as e:
        raise ExtractError(f"layer stream: {e}") from None
    reader.drain()
    return reader.digest(), written


class DownloadRestarted(Exception):
    """The download being extracted restarted from byte 0 (a retry): extract again from the file."""


class GrowingFile(io.RawIOBase):
    """Sequential reads of a file another task is still writing (download and extraction overlap,
    as containers/image does): a read at the current end waits for more bytes or the end."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._cond = threading.Condition()
        self._written = 0
        self._pos = 0
        self._done = False
        self._error: str | None = None
        self._restarted = False

    def readable(self) -> bool:
        return True

    # -- writer side (event loop) -------------------------------------------------------------
    def wrote(self, n: int) -> None:
        with self._cond:
            self._written += n
            self._cond.notify_all()

    def restart(self) -> None:
        with self._cond:
            self._restarted = True
            self._written = 0
            self._cond.notify_all()

    def finish(self, error: str | None = None) -> None:
        with self._cond:
            self._done = True
            self._error = error
            self._cond.notify_all()

    # -- reader side (extraction thread) ------------------------------------------------------
    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._cond:
            while self._pos >= self._written and not self._done and not self._restarted:
                self._cond.wait()
            if self._restarted:
                raise DownloadRestarted()
            if self._error is not None:
                raise ExtractError(f"download failed: {self._error}")
            avail = self._written - self._pos
        if avail <= 0:
            return 0
        data = os.pread(self._fd, min(len(b), avail), self._pos)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
