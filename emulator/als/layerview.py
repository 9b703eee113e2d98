"""One layer's tree as overlayfs expects a lower directory on disk.

The lazy store's tree applies whiteouts (they delete entries of lower layers); an ALS `diff/`
must instead *show* them, in overlay's on-disk form, so that the kernel applies them when it
stacks the layers: `.wh.NAME` becomes a character device 0/0 named NAME, and a directory holding
`.wh..wh..opq` gets the xattr `trusted.overlay.opaque=y`.
"""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Mapping
from typing import Protocol

from emulator.view import Stat
from imageformat.toc import EntryType, Toc

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


class XattrView(Protocol):
    def stat(self, path: str) -> Stat: ...

    def listdir(self, path: str) -> list[str]: ...

    def readlink(self, path: str) -> str: ...

    def read(self, path: str, offset: int, length: int) -> bytes: ...

    def xattrs(self, path: str) -> Mapping[str, bytes]: ...


class OverlayLayerView:
    """Wraps a single-layer view; adds whiteout devices and opaque markers from the layer's TOC."""

    def __init__(self, inner: XattrView, toc: Toc) -> None:
        self.inner = inner
        self.whiteouts: dict[str, Stat] = {}  # path -> 0/0 char device
        self.opaque: set[str] = set()
        self._extra_children: dict[str, list[str]] = {}
        for e in toc.entries:
            base = posixpath.basename(e.path)
            parent = posixpath.dirname(e.path) or "."
            if base == OPAQUE_MARKER:
                self.opaque.add(parent)
            elif base.startswith(WHITEOUT_PREFIX) and len(base) > len(WHITEOUT_PREFIX):
                name = base[len(WHITEOUT_PREFIX) :]
                path = name if parent == "." else f"{parent}/{name}"
                self.whiteouts[path] = Stat(
                    type=EntryType.CHAR, mode=0, size=0, uid=e.uid, gid=e.gid, mtime_ns=e.mtime_ns or 0
                )
                self._extra_children.setdefault(parent, []).append(name)

    def stat(self, path: str) -> Stat:
        wh = self.whiteouts.get(path)
        if wh is not None:
            return wh
        return self.inner.stat(path)

    def listdir(self, path: str) -> list[str]:
        names = self.inner.listdir(path)
        extra = [n for n in self._extra_children.get(path, ()) if n not in names]
        return names + extra

    def readlink(self, path: str) -> str:
        if path in self.whiteouts:
            raise OSError(errno.EINVAL, "not a symlink", path)
        return self.inner.readlink(path)

    def read(self, path: str, offset: int, length: int) -> bytes:
        if path in self.whiteouts:
            raise OSError(errno.EINVAL, "a whiteout has no content", path)
        return self.inner.read(path, offset, length)

    def xattrs(self, path: str) -> Mapping[str, bytes]:
        if path in self.whiteouts:
            return {}
        found = dict(self.inner.xattrs(path))
        if path in self.opaque:
            found[OPAQUE_XATTR] = b"y"
        return found
