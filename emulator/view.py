"""The read-only file-system view that the FUSE adapter and trace replay consume.

The lazy store implements it (fetching on demand); so can a fully extracted root or a local
blob. Paths are normalized relative paths ("." is the root), as `imageformat.toc` defines.
Errors are OSError with an errno (ENOENT, ENOTDIR, EISDIR, EINVAL, EIO) so that FUSE can
return them unchanged.
"""

from __future__ import annotations

import stat as st
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from imageformat.toc import EntryType

# File-type bits of st_mode -> entry type, for views backed by a real directory.
ENTRY_TYPE_OF_MODE: Mapping[int, EntryType] = {
    st.S_IFREG: EntryType.REG,
    st.S_IFDIR: EntryType.DIR,
    st.S_IFLNK: EntryType.SYMLINK,
    st.S_IFCHR: EntryType.CHAR,
    st.S_IFBLK: EntryType.BLOCK,
    st.S_IFIFO: EntryType.FIFO,
}


@dataclass(frozen=True, slots=True)
class Stat:
    type: EntryType
    mode: int  # permission bits only
    size: int
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    nlink: int = 1
    ino: int = 0
    rdev_major: int = 0
    rdev_minor: int = 0
    xattrs: Mapping[str, bytes] = field(default_factory=dict)


class FileSystemView(Protocol):
    """Blocking, thread-safe file API (FUSE calls it from its own threads)."""

    def stat(self, path: str) -> Stat: ...

    def listdir(self, path: str) -> list[str]: ...

    def readlink(self, path: str) -> str: ...

    def read(self, path: str, offset: int, length: int) -> bytes: ...
