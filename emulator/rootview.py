"""A view over an extracted root directory (what full and partial pulls run from).

Same method names as `LazyStore` (async) so trace replay treats every mode alike. Paths are
image paths; symlinks are resolved inside the root as a chroot would (absolute targets start
at the root, `..` never leaves it), so a hostile image cannot make a read escape.
"""

from __future__ import annotations

import errno
import os
import stat as st
from pathlib import Path

from emulator.view import ENTRY_TYPE_OF_MODE, Stat
from imageformat.toc import EntryType, normalize_path

MAX_HOPS = 40


class RootView:
    def __init__(self, root: str | Path) -> None:
        self.root = os.path.realpath(root)

    def _host(self, path: str) -> str:
        """Host path of an image path, without following its last component."""
        try:
            p = normalize_path(path)
        except ValueError:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path) from None
        parent, _, base = p.rpartition("/")
        if p == ".":
            return self.root
        return os.path.join(self._resolve(parent) if parent else self.root, base)

    def _resolve(self, path: str) -> str:
        """Host path of an image path with every symlink followed inside the root."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        cur: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if cur:
                    cur.pop()
                continue
            host = os.path.join(self.root, *cur, part)
            if os.path.islink(host):
                hops += 1
                if hops > MAX_HOPS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(host)
                if target.startswith("/"):
                    cur = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            cur.append(part)
        return os.path.join(self.root, *cur)

    async def stat(self, path: str) -> Stat:
        s = os.lstat(self._host(path))
        kind = ENTRY_TYPE_OF_MODE.get(st.S_IFMT(s.st_mode), EntryType.REG)
        size = s.st_size if kind in (EntryType.REG, EntryType.SYMLINK) else 0
        return Stat(
            type=kind,
            mode=st.S_IMODE(s.st_mode),
            size=size,
            uid=s.st_uid,
            gid=s.st_gid,
            mtime_ns=s.st_mtime_ns,
            nlink=s.st_nlink,
            ino=s.st_ino,
            rdev_major=os.major(s.st_rdev),
            rdev_minor=os.minor(s.st_rdev),
        )

    async def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self._resolve(path)))

    async def readlink(self, path: str) -> str:
        return os.readlink(self._host(path))

    async def read(self, path: str, offset: int, length: int) -> bytes:
        host = self._resolve(path)
        if os.path.isdir(host):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            return os.pread(fd, max(0, length), offset)
        finally:
            os.close(fd)
