"""A `FileSystemView` over a local directory (an extracted image root).

For tests and benchmarks: the same files through FUSE and in-process, compared with the
source tree itself. Trusted trees only: symlinks are reported, never followed, for the last
path component; the kernel resolves symlinks itself before it asks a FUSE file system, so
intermediate components are real directories.
"""

from __future__ import annotations

import errno
import os
import stat as st
from pathlib import Path

from emulator.view import ENTRY_TYPE_OF_MODE, Stat
from imageformat.toc import EntryType


class DirectoryView:
    """Blocking and thread-safe (every call is a fresh syscall)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(root))

    def _os_path(self, path: str) -> str:
        if path in (".", ""):
            return str(self.root)
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise OSError(errno.EINVAL, f"not a normalized path: {path!r}")
        return os.path.join(self.root, path)

    def stat(self, path: str) -> Stat:
        full = self._os_path(path)
        s = os.lstat(full)
        kind = ENTRY_TYPE_OF_MODE.get(st.S_IFMT(s.st_mode))
        if kind is None:
            raise OSError(errno.EIO, f"unsupported file type (socket?) at {path!r}")
        xattrs: dict[str, bytes] = {}
        if kind is not EntryType.SYMLINK:
            try:
                for name in os.listxattr(full, follow_symlinks=False):
                    xattrs[name] = os.getxattr(full, name, follow_symlinks=False)
            except OSError:
                pass
        return Stat(
            type=kind,
            mode=st.S_IMODE(s.st_mode),
            size=s.st_size if kind in (EntryType.REG, EntryType.SYMLINK) else 0,
            uid=s.st_uid,
            gid=s.st_gid,
            mtime_ns=s.st_mtime_ns,
            nlink=s.st_nlink,
            ino=s.st_ino,
            rdev_major=os.major(s.st_rdev),
            rdev_minor=os.minor(s.st_rdev),
            xattrs=xattrs,
        )

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self._os_path(path)))

    def readlink(self, path: str) -> str:
        return os.readlink(self._os_path(path))

    def read(self, path: str, offset: int, length: int) -> bytes:
        full = self._os_path(path)
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            if st.S_ISDIR(os.fstat(fd).st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)
