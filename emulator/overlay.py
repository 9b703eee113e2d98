"""Overlay merge of layer TOCs into one read-only tree (the container's root file system view).

Layers apply bottom to top. In a layer, `D/.wh.NAME` removes `D/NAME` (and its subtree) of the
layers below, and `D/.wh..wh..opq` hides everything the layers below put in `D` (OCI image
spec, "Whiteouts"). A non-directory replaces a lower directory with its whole subtree. Whiteout
files, eStargz landmarks and `stargz.index.json` never show. Hardlinks resolve to their target
in the same layer (tar order guarantees it came first) and share its inode number.
"""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from emulator.view import Stat
from imageformat.toc import EntryType, LayerFormat, Toc, TocEntry, normalize_path

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
HIDDEN_ROOT_NAMES = frozenset({".prefetch.landmark", ".no.prefetch.landmark", "stargz.index.json"})
MAX_SYMLINK_HOPS = 40


@dataclass(frozen=True, slots=True)
class Node:
    layer: int  # index into the layer list (bottom = 0); -1 for an implied directory
    entry: TocEntry | None  # None for an implied directory
    ino: int


def _enoent(path: str) -> OSError:
    return OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)


class MergedTree:
    """The merged namespace of several layers; immutable once built."""

    def __init__(self, tocs: Sequence[Toc]) -> None:
        entries: dict[str, tuple[int, TocEntry | None]] = {".": (-1, None)}
        for i, toc in enumerate(tocs):
            own: list[TocEntry] = []
            for e in toc.entries:
                base = posixpath.basename(e.path)
                parent = posixpath.dirname(e.path) or "."
                if base == OPAQUE:
                    self._remove_below(entries, parent, keep_self=True)
                elif base.startswith(WHITEOUT_PREFIX):
                    self._remove_below(entries, _join(parent, base[len(WHITEOUT_PREFIX) :]), keep_self=False)
                elif parent == "." and base in HIDDEN_ROOT_NAMES and toc.format is LayerFormat.ESTARGZ:
                    continue
                else:
                    own.append(e)
            for e in own:
                prev = entries.get(e.path)
                if prev is not None and e.type is not EntryType.DIR and _is_dir(prev[1]):
                    self._remove_below(entries, e.path, keep_self=True)
                entries[e.path] = (i, e)
                p = posixpath.dirname(e.path) or "."
                while p not in entries or not _is_dir(entries[p][1]):
                    if p in entries and not _is_dir(entries[p][1]):
                        self._remove_below(entries, p, keep_self=False)
                    entries[p] = (-1, None)  # implied parent directory
                    p = posixpath.dirname(p) or "."
        self._tocs = tocs
        self.children: dict[str, list[str]] = {}
        for path in entries:
            if path != ".":
                self.children.setdefault(posixpath.dirname(path) or ".", []).append(posixpath.basename(path))
        paths = sorted(entries)
        ino_of = {p: n + 1 for n, p in enumerate(paths)}
        self.nodes: dict[str, Node] = {}
        self._nlink: dict[tuple[int, str], int] = {}
        for p in paths:
            layer, ent = entries[p]
            ino = ino_of[p]
            if ent is not None and ent.type is EntryType.HARDLINK:
                target = self._hardlink_target(layer, ent)
                if target is not None and target.path in ino_of and entries[target.path][0] == layer:
                    ino = ino_of[target.path]
                key = (layer, target.path if target else ent.path)
                self._nlink[key] = self._nlink.get(key, 1) + 1
            self.nodes[p] = Node(layer, ent, ino)

    @staticmethod
    def _remove_below(entries: dict[str, tuple[int, TocEntry | None]], path: str, *, keep_self: bool) -> None:
        prefix = "" if path == "." else path + "/"
        for k in [k for k in entries if (k.startswith(prefix) and k != ".") or (k == path and not keep_self)]:
            if k != path or not keep_self:
                del entries[k]

    def _hardlink_target(self, layer: int, e: TocEntry) -> TocEntry | None:
        """The regular file a hardlink names: in its own layer, else the nearest lower one."""
        try:
            target = normalize_path(e.link_name)
        except ValueError:
            return None
        for i in range(layer, -1, -1):
            t = self._tocs[i].by_path.get(target)
            if t is not None:
                return t if t.type is EntryType.REG else None
        return None

    # -- lookups ------------------------------------------------------------------------------
    def node(self, path: str) -> Node:
        """The node at `path`; symlinks in its parent directories are followed (not in the last name)."""
        try:
            p = normalize_path(path)
        except ValueError:
            raise _enoent(path) from None
        n = self.nodes.get(p)
        if n is None and "/" in p:
            parent, base = p.rsplit("/", 1)
            n = self.nodes.get(_join(self.resolve(parent), base))
        if n is None:
            raise _enoent(path)
        return n

    def canonical(self, path: str) -> str:
        """`path` with symlinks in its parents resolved (the key of its node)."""
        p = normalize_path(path)
        if p in self.nodes or "/" not in p:
            return p
        parent, base = p.rsplit("/", 1)
        return _join(self.resolve(parent), base)

    def regular(self, path: str) -> tuple[int, TocEntry]:
        """(layer, entry holding the content) of a regular file or hardlink; OSError otherwise."""
        n = self.node(path)
        e = n.entry
        if e is None or e.type is EntryType.DIR:
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if e.type is EntryType.HARDLINK:
            target = self._hardlink_target(n.layer, e)
            if target is None:
                raise OSError(errno.EIO, f"hardlink {e.path} -> {e.link_name}: target missing", path)
            return n.layer, target
        if e.type is not EntryType.REG:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
        return n.layer, e

    def stat(self, path: str) -> Stat:
        n = self.node(path)
        e = n.entry
        p = self.canonical(path)
        if e is None:
            return Stat(type=EntryType.DIR, mode=0o755, size=0, nlink=2, ino=n.ino)
        content = e
        if e.type is EntryType.HARDLINK:
            content = self._hardlink_target(n.layer, e) or e
        nlink = self._nlink.get((n.layer, content.path), 1) if content.type is EntryType.REG else 1
        if e.type is EntryType.DIR:
            nlink = 2 + sum(1 for c in self.children.get(p, []) if _is_dir(self.nodes[_join(p, c)].entry))
        size = content.size if content.type is EntryType.REG else 0
        if content.type is EntryType.SYMLINK:
            size = len(content.link_name.encode())
        return Stat(
            type=content.type if content.type is not EntryType.HARDLINK else EntryType.REG,
            mode=content.mode & 0o7777,
            size=size,
            uid=content.uid,
            gid=content.gid,
            mtime_ns=content.mtime_ns or 0,
            nlink=nlink,
            ino=n.ino,
            rdev_major=content.dev_major,
            rdev_minor=content.dev_minor,
            xattrs=dict(content.xattrs),
        )

    def listdir(self, path: str) -> list[str]:
        """Names in a directory; a symlink to a directory is followed (as opendir does)."""
        p = self.resolve(path)
        n = self.nodes[p]
        if n.entry is not None and n.entry.type is not EntryType.DIR:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return sorted(self.children.get(p, []))

    def readlink(self, path: str) -> str:
        n = self.node(path)
        if n.entry is None or n.entry.type is not EntryType.SYMLINK:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
        return n.entry.link_name

    def resolve(self, path: str) -> str:
        """Follow symlinks (inside the image root) to a final path; ENOENT/ELOOP as the kernel does."""
        p = normalize_path(path)
        for _ in range(MAX_SYMLINK_HOPS):
            parts = [] if p == "." else p.split("/")
            cur = "."
            for i, part in enumerate(parts):
                nxt = _join(cur, part)
                n = self.nodes.get(nxt)
                if n is None:
                    raise _enoent(path)
                if n.entry is not None and n.entry.type is EntryType.SYMLINK:
                    target = n.entry.link_name
                    base = "." if target.startswith("/") else cur
                    rest = "/".join(parts[i + 1 :])
                    p = _clean(_join(_join(base, target.lstrip("/")), rest) if rest else _join(base, target))
                    break
                cur = nxt
            else:
                return cur
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)

    def regular_paths(self) -> list[str]:
        return [p for p, n in self.nodes.items() if n.entry is not None and n.entry.type is EntryType.REG]


def _is_dir(e: TocEntry | None) -> bool:
    return e is None or e.type is EntryType.DIR


def _join(a: str, b: str) -> str:
    return b if a == "." else f"{a}/{b}"


def _clean(p: str) -> str:
    """Collapse `..` without escaping the root (the way chroot confines symlinks)."""
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
        else:
            out.append(part)
    return "/".join(out) or "."
