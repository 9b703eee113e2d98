"""mfusepy callbacks for the ALS layout (see `layout`): lookups resolve layers on demand.

Directories are `dr-x------` and files `-r--------`, owned by the serving user (root on a
node), as stargz-store does. The mount is not `ro`: containers/storage must be able to
`creat()` `<layer>/use` and `rmdir()` the layer directory; both are signals, both answer ENOENT
(the protocol of spec section 4.3). Every other write is EROFS.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as st
import threading
import time
from collections.abc import Callable
from typing import Any

import mfusepy

from emulator.als.layout import Kind, encode_ref, parse
from emulator.als.store import AdditionalLayerStore, ServedLayer
from emulator.fuse.operations import ENOATTR, TYPE_BITS, stat_to_attrs
from imageformat.toc import EntryType

log = logging.getLogger(__name__)

DIR_MODE = st.S_IFDIR | 0o500
FILE_MODE = st.S_IFREG | 0o400
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC


def _err(code: int) -> mfusepy.FuseOSError:
    return mfusepy.FuseOSError(code)


class AlsOperations(mfusepy.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, store: AdditionalLayerStore, *, on_ready: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_ready = on_ready
        self.initialized = False
        self._now_ns = time.time_ns()
        self._uid, self._gid = os.getuid(), os.getgid()
        self._ino_lock = threading.Lock()
        self._inos: dict[tuple[str, ...], int] = {}
        self.signals: list[tuple[str, str, str]] = []  # (use|release, ref, digest), for reports

    def init(self, path: str) -> None:
        self.initialized = True
        if self.on_ready is not None:
            self.on_ready()

    # -- helpers --------------------------------------------------------------------------------
    def _ino(self, *key: str) -> int:
        with self._ino_lock:
            return self._inos.setdefault(key, len(self._inos) + 2)

    def _synthetic(self, mode: int, size: int, *key: str) -> dict[str, Any]:
        return {
            "st_mode": mode,
            "st_size": size,
            "st_nlink": 2 if st.S_ISDIR(mode) else 1,
            "st_uid": self._uid,
            "st_gid": self._gid,
            "st_ino": self._ino(*key),
            "st_mtime": self._now_ns,
            "st_atime": self._now_ns,
            "st_ctime": self._now_ns,
            "st_blocks": (size + 511) // 512,
            "st_blksize": 4096,
        }

    def _layer(self, ref: str, digest: str) -> ServedLayer:
        try:
            return self.store.layer(ref, digest)
        except OSError as e:
            raise _err(e.errno or errno.ENOENT) from None

    def _diff_call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except OSError as e:
            raise _err(e.errno or errno.EIO) from None
        except Exception:
            log.exception("diff operation failed")
            raise _err(errno.EIO) from None

    # -- read side ------------------------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        p = parse(path)
        if p.kind is Kind.ROOT:
            return self._synthetic(st.S_IFDIR | 0o755, 0, "/")
        if p.kind is Kind.IMAGE:
            return self._synthetic(DIR_MODE, 0, p.ref)
        if p.kind in (Kind.OTHER, Kind.USE):
            raise _err(errno.ENOENT)
        layer = self._layer(p.ref, p.digest)
        if p.kind is Kind.LAYER:
            return self._synthetic(DIR_MODE, 0, p.ref, p.digest)
        if p.kind is Kind.INFO:
            return self._synthetic(FILE_MODE, len(layer.info), p.ref, p.digest, "info")
        if p.kind is Kind.BLOB:
            return self._synthetic(FILE_MODE, layer.descriptor.size, p.ref, p.digest, "blob")
        s = self._diff_call(lambda: layer.diff.stat(p.rest))
        link_size = None
        if s.type is EntryType.SYMLINK and s.size == 0:
            link_size = len(os.fsencode(self._diff_call(lambda: layer.diff.readlink(p.rest))))
        ino = self._ino(p.ref, p.digest, "diff", str(s.ino) if s.ino else p.rest)
        return stat_to_attrs(s, ino=ino, symlink_size=link_size)

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        p = parse(path)
        entries: list[tuple[str, int, tuple[str, ...]]]
        if p.kind is Kind.ROOT:
            entries = [(encode_ref(r), DIR_MODE, (r,)) for r in self.store.refs()]
        elif p.kind is Kind.IMAGE:
            entries = [(d, DIR_MODE, (p.ref, d)) for d in self.store.digests(p.ref)]
        elif p.kind is Kind.LAYER:
            self._layer(p.ref, p.digest)
            entries = [
                ("diff", DIR_MODE, (p.ref, p.digest, "diff", ".")),
                ("info", FILE_MODE, (p.ref, p.digest, "info")),
                ("blob", FILE_MODE, (p.ref, p.digest, "blob")),
            ]
        elif p.kind is Kind.DIFF:
            layer = self._layer(p.ref, p.digest)
            out = [(".", {"st_mode": DIR_MODE, "st_ino": self._ino(path)}, 0)]
            out.append(("..", {"st_mode": DIR_MODE, "st_ino": self._ino(path, "..")}, 0))
            for name in self._diff_call(lambda: layer.diff.listdir(p.rest)):
                child = name if p.rest == "." else f"{p.rest}/{name}"
                s = self._diff_call(lambda c=child: layer.diff.stat(c))  # type: ignore[misc]
                ino = self._ino(p.ref, p.digest, "diff", str(s.ino) if s.ino else child)
                out.append((name, {"st_mode": TYPE_BITS[s.type] | (s.mode & 0o7777), "st_ino": ino}, 0))
            return out
        else:
            raise _err(errno.ENOTDIR)
        listing = [(".", {"st_mode": DIR_MODE, "st_ino": self._ino(path)}, 0)]
        listing.append(("..", {"st_mode": DIR_MODE, "st_ino": self._ino(path, "..")}, 0))
        listing += [(n, {"st_mode": m, "st_ino": self._ino(*k)}, 0) for n, m, k in entries]
        return listing

    def readlink(self, path: str) -> str:
        p = parse(path)
        if p.kind is not Kind.DIFF:
            raise _err(errno.EINVAL)
        layer = self._layer(p.ref, p.digest)
        return str(self._diff_call(lambda: layer.diff.readlink(p.rest)))

    def open(self, path: str, flags: int) -> int:
        if flags & _WRITE_FLAGS:
            raise _err(errno.EROFS)
        p = parse(path)
        if p.kind not in (Kind.INFO, Kind.BLOB, Kind.DIFF):
            raise _err(errno.EISDIR if p.kind in (Kind.ROOT, Kind.IMAGE, Kind.LAYER) else errno.ENOENT)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        p = parse(path)
        if p.kind in (Kind.INFO, Kind.BLOB, Kind.DIFF):
            layer = self._layer(p.ref, p.digest)
            if p.kind is Kind.INFO:
                return layer.info[offset : offset + size]
            if p.kind is Kind.BLOB:
                return bytes(self._diff_call(lambda: self.store.read_blob(layer, offset, size)))
            return bytes(self._diff_call(lambda: layer.diff.read(p.rest, offset, size)))
        raise _err(errno.EISDIR)

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        p = parse(path)
        if p.kind is Kind.DIFF:
            layer = self._layer(p.ref, p.digest)
            found = self._diff_call(lambda: layer.diff.xattrs(p.rest))
            if name in found:
                return bytes(found[name])
        raise _err(ENOATTR)

    def listxattr(self, path: str) -> list[str]:
        p = parse(path)
        if p.kind is Kind.DIFF:
            layer = self._layer(p.ref, p.digest)
            return list(self._diff_call(lambda: layer.diff.xattrs(p.rest)))
        return []

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    # -- signals --------------------------------------------------------------------------------
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        p = parse(path)
        if p.kind is Kind.USE:
            count = self.store.use(p.ref, p.digest) if self._exists(p.ref, p.digest) else 0
            self.signals.append(("use", p.ref, p.digest))
            log.info("use %s %s -> refcount %d", p.ref, p.digest, count)
            raise _err(errno.ENOENT)
        raise _err(errno.EROFS)

    def rmdir(self, path: str) -> int:
        p = parse(path)
        if p.kind is Kind.LAYER:
            count = self.store.release(p.ref, p.digest)
            self.signals.append(("release", p.ref, p.digest))
            log.info("release %s %s -> refcount %d", p.ref, p.digest, count)
            raise _err(errno.ENOENT)
        raise _err(errno.EROFS)

    def _exists(self, ref: str, digest: str) -> bool:
        try:
            self.store.layer(ref, digest)
        except OSError:
            return False
        return True
