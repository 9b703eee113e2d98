"""mfusepy `Operations` over a `FileSystemView`: read-only, stat with file-type bits, xattrs.

Paths arrive from libfuse as absolute (`/usr/bin`) and go to the view normalized (`usr/bin`,
`.` for the root). The view's OSErrors (ENOENT, ENOTDIR, EIO, ...) go back to the kernel
unchanged; any other exception from the view becomes EIO (logged), never wrong bytes.

`ViewOperations.stats` counts the FUSE operations served (every callback but `init`) and the
CPU time spent in them (`time.thread_time` in the libfuse worker thread: mfusepy's argument
conversion and ours, plus the view's work when it runs in that thread - metadata and cached
reads of the lazy view; fetches and decodes on the store's loop thread are not FUSE CPU).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import posixpath
import stat as st
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import mfusepy

from emulator.fuse.recorder import RecordedOp, TraceRecorder
from emulator.view import FileSystemView, Stat
from imageformat.toc import EntryType
from startup.trace import Op

log = logging.getLogger(__name__)

T = TypeVar("T")

TYPE_BITS = {
    EntryType.REG: st.S_IFREG,
    EntryType.HARDLINK: st.S_IFREG,
    EntryType.DIR: st.S_IFDIR,
    EntryType.SYMLINK: st.S_IFLNK,
    EntryType.CHAR: st.S_IFCHR,
    EntryType.BLOCK: st.S_IFBLK,
    EntryType.FIFO: st.S_IFIFO,
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_DEVICES = (EntryType.CHAR, EntryType.BLOCK)
ENOATTR = getattr(errno, "ENOATTR", errno.ENODATA)


@dataclass(frozen=True, slots=True)
class FuseStats:
    ops: int = 0  # FUSE callbacks served (init excluded)
    cpu_s: float = 0.0  # thread CPU time spent in them


F = TypeVar("F", bound=Callable[..., Any])


def _served(fn: F) -> F:
    """Count the callback as one FUSE operation and add its thread CPU time to the stats."""

    @functools.wraps(fn)
    def wrapper(self: ViewOperations, *args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(self, *args, **kwargs)
        finally:
            cpu = time.thread_time() - t0
            with self._stats_lock:
                self._ops += 1
                self._cpu_s += cpu

    return wrapper  # type: ignore[return-value]


def view_path(fuse_path: str) -> str:
    stripped = fuse_path.strip("/")
    return stripped if stripped else "."


def stat_to_attrs(s: Stat, *, ino: int, symlink_size: int | None = None) -> dict[str, Any]:
    size = s.size
    if s.type is EntryType.SYMLINK and symlink_size is not None:
        size = symlink_size
    return {
        "st_mode": TYPE_BITS[s.type] | (s.mode & 0o7777),
        "st_size": size,
        "st_uid": s.uid,
        "st_gid": s.gid,
        "st_nlink": max(1, s.nlink) if s.type is not EntryType.DIR else max(2, s.nlink),
        "st_ino": ino,
        "st_rdev": os.makedev(s.rdev_major, s.rdev_minor) if s.type in _DEVICES else 0,
        "st_mtime": s.mtime_ns,
        "st_atime": s.mtime_ns,
        "st_ctime": s.mtime_ns,
        "st_blocks": (size + 511) // 512,
        "st_blksize": 4096,
    }


class ViewOperations(mfusepy.Operations):  # type: ignore[misc]
    """The callbacks libfuse runs (from several threads) for a read-only view."""

    use_ns = True  # st_mtime etc. are integer nanoseconds

    def __init__(
        self,
        view: FileSystemView,
        *,
        record: TraceRecorder | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.view = view
        self.record = record
        self.on_ready = on_ready
        self._ino_lock = threading.Lock()
        self._synthetic_ino: dict[str, int] = {}
        self.initialized = False
        self._stats_lock = threading.Lock()
        self._ops = 0
        self._cpu_s = 0.0

    @property
    def stats(self) -> FuseStats:
        with self._stats_lock:
            return FuseStats(self._ops, self._cpu_s)

    # -- plumbing -----------------------------------------------------------------------------
    def _call(self, op: Op | None, path: str, fn: Callable[[], T], *, offset: int = 0) -> T:
        start = self.record.now() if (self.record is not None and op is not None) else 0.0
        err = 0
        result: Any = None
        try:
            result = fn()
            return result
        except OSError as e:
            err = e.errno or errno.EIO
            raise mfusepy.FuseOSError(err) from None
        except Exception:
            err = errno.EIO
            log.exception("view failed on %s", path)
            raise mfusepy.FuseOSError(errno.EIO) from None
        finally:
            if self.record is not None and op is not None:
                length = len(result) if (op is Op.READ and isinstance(result, bytes)) else 0
                self.record.add(
                    RecordedOp(
                        op=op,
                        path=path,
                        offset=offset,
                        length=length,
                        start_s=start,
                        end_s=self.record.now(),
                        error=err,
                    )
                )

    def _ino(self, path: str, s: Stat) -> int:
        if s.ino:
            return s.ino
        with self._ino_lock:
            return self._synthetic_ino.setdefault(path, len(self._synthetic_ino) + 2)

    # -- callbacks ----------------------------------------------------------------------------
    def init(self, path: str) -> None:
        self.initialized = True
        if self.on_ready is not None:
            self.on_ready()

    @_served
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        p = view_path(path)
        s = self._call(Op.STAT, p, lambda: self.view.stat(p))
        link_size = None
        if s.type is EntryType.SYMLINK and s.size == 0:
            link_size = len(os.fsencode(self.view.readlink(p)))
        return stat_to_attrs(s, ino=self._ino(p, s), symlink_size=link_size)

    @_served
    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        # With use_ino the kernel gets d_ino from these stats; an entry with d_ino 0 is hidden
        # by readdir(3), so every entry carries its mode and inode (unrecorded view stats).
        p = view_path(path)
        names = self._call(Op.LISTDIR, p, lambda: self.view.listdir(p))
        parent = posixpath.dirname(p) or "."
        out = []
        for name, child in ((".", p), ("..", parent), *((n, n if p == "." else f"{p}/{n}") for n in names)):
            s = self._call(None, child, lambda c=child: self.view.stat(c))  # type: ignore[misc]
            out.append(
                (name, {"st_mode": TYPE_BITS[s.type] | (s.mode & 0o7777), "st_ino": self._ino(child, s)}, 0)
            )
        return out

    @_served
    def readlink(self, path: str) -> str:
        p = view_path(path)
        return self._call(Op.READLINK, p, lambda: self.view.readlink(p))

    @_served
    def open(self, path: str, flags: int) -> int:
        p = view_path(path)
        if flags & _WRITE_FLAGS:
            raise mfusepy.FuseOSError(errno.EROFS)
        s = self._call(Op.OPEN, p, lambda: self.view.stat(p))
        if s.type is EntryType.DIR:
            raise mfusepy.FuseOSError(errno.EISDIR)
        return 0

    @_served
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        p = view_path(path)
        return self._call(Op.READ, p, lambda: self.view.read(p, offset, size), offset=offset)

    def _xattrs(self, p: str) -> Mapping[str, bytes]:
        getter = getattr(self.view, "xattrs", None)  # views may serve xattrs apart from stat
        if callable(getter):
            return self._call(None, p, lambda: getter(p))  # type: ignore[no-any-return]
        return self._call(None, p, lambda: self.view.stat(p)).xattrs

    @_served
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        xattrs = self._xattrs(view_path(path))
        if name not in xattrs:
            raise mfusepy.FuseOSError(ENOATTR)
        return bytes(xattrs[name])

    @_served
    def listxattr(self, path: str) -> list[str]:
        return list(self._xattrs(view_path(path)))

    @_served
    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    @_served
    def access(self, path: str, amode: int) -> int:
        if amode & os.W_OK:
            raise mfusepy.FuseOSError(errno.EROFS)
        return 0
