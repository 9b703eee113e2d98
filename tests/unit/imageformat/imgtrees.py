"""Generated layer tars for the image-format tests (hypothesis strategies and fixed samples)."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field

from hypothesis import strategies as st


@dataclass(frozen=True)
class Node:
    path: str
    kind: str  # reg, dir, symlink, hardlink, fifo, char
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_700_000_000
    link: str = ""
    xattrs: dict[str, bytes] = field(default_factory=dict)


def tar_bytes(nodes: list[Node]) -> bytes:
    """A PAX tar of `nodes` (parent directories are the caller's business)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for n in nodes:
            ti = tarfile.TarInfo(n.path)
            ti.mode, ti.uid, ti.gid, ti.mtime, ti.uname, ti.gname = n.mode, n.uid, n.gid, n.mtime, "", ""
            ti.pax_headers = {
                "SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") for k, v in n.xattrs.items()
            }
            kinds = {
                "reg": tarfile.REGTYPE,
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "char": tarfile.CHRTYPE,
            }
            ti.type = kinds[n.kind]
            if n.kind in ("symlink", "hardlink"):
                ti.linkname = n.link
            if n.kind == "char":
                ti.devmajor, ti.devminor = 1, 3
            if n.kind == "reg":
                ti.size = len(n.data)
                tf.addfile(ti, io.BytesIO(n.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


_name = st.text(alphabet=st.sampled_from("abcxyz_-.0123456789äöü漢字 "), min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and not s.startswith(" ") and s.strip() == s
)
_long_name = st.text(alphabet="abcdefgh", min_size=100, max_size=140)


@st.composite
def _content(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["empty", "small", "random", "holes", "text", "big"]))
    if kind == "empty":
        return b""
    if kind == "small":
        return draw(st.binary(min_size=1, max_size=200))
    seed = draw(st.integers(0, 2**32 - 1))
    import numpy as np

    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.bytes(int(rng.integers(1, 20000)))
    if kind == "holes":
        return rng.bytes(700) + bytes(5000) + rng.bytes(300) + bytes(2048)
    if kind == "text":
        return b"lazy pulling " * int(rng.integers(1, 3000))
    return rng.bytes(int(rng.integers(1 << 20, 3 << 20)))  # multi-megabyte


@st.composite
def layer_nodes(draw: st.DrawFn) -> list[Node]:
    """Nested dirs, unicode and long names, empty files, symlinks, hardlinks, modes, xattrs, holes."""
    dirs = draw(st.lists(st.lists(_name, min_size=1, max_size=3), min_size=0, max_size=4))
    dir_paths: dict[str, None] = {}
    for parts in dirs:
        for i in range(1, len(parts) + 1):
            dir_paths["/".join(parts[:i])] = None
    nodes = [Node(d, "dir", mode=0o755) for d in dir_paths]
    parents = ["", *dir_paths]
    n_files = draw(st.integers(1, 6))
    used: set[str] = set(dir_paths)
    regs: list[str] = []
    for _ in range(n_files):
        parent = draw(st.sampled_from(parents))
        name = draw(st.one_of(_name, _long_name))
        path = f"{parent}/{name}" if parent else name
        if path in used:
            continue
        used.add(path)
        big_ok = draw(st.booleans())
        data = draw(_content())
        if len(data) > (1 << 20) and not big_ok:
            data = data[:5000]
        xattrs = draw(
            st.sampled_from([{}, {"user.test": b"v\x00\xff"}, {"security.capability": b"\x01\x02"}])
        )
        nodes.append(
            Node(
                path,
                "reg",
                data=data,
                mode=draw(st.sampled_from([0o644, 0o755, 0o4755, 0o600])),
                uid=draw(st.sampled_from([0, 1000])),
                gid=draw(st.sampled_from([0, 1001])),
                mtime=draw(st.integers(1, 2_000_000_000)),
                xattrs=xattrs,
            )
        )
        regs.append(path)
    if regs and draw(st.booleans()):
        nodes.append(Node("zz-hardlink", "hardlink", link=regs[0]))
    if draw(st.booleans()):
        nodes.append(
            Node(
                "zz-symlink",
                "symlink",
                link=draw(st.sampled_from(["etc/x", "/abs/path", "rel/../x"])),
                mode=0o777,
            )
        )
    if draw(st.booleans()):
        nodes.append(Node("zz-fifo", "fifo"))
    return nodes


def sample_nodes() -> list[Node]:
    """A fixed small layer with one of everything (chunked when chunk_bytes is small)."""
    import numpy as np

    rng = np.random.default_rng(7)
    return [
        Node("etc", "dir", mode=0o755),
        Node("etc/hello", "reg", data=b"hi\n"),
        Node("etc/empty", "reg", data=b""),
        Node("usr", "dir", mode=0o755),
        Node("usr/bin", "dir", mode=0o755),
        Node(
            "usr/bin/big",
            "reg",
            data=rng.bytes(300_000),
            mode=0o755,
            uid=1000,
            gid=1001,
            xattrs={"user.test": b"yes"},
        ),
        Node("usr/bin/sparse", "reg", data=rng.bytes(3000) + bytes(5000) + rng.bytes(100)),
        Node("usr/bin/text", "reg", data=b"lazy " * 40000),
        Node("usr/bin/link", "symlink", link="big", mode=0o777),
        Node("usr/bin/hard", "hardlink", link="usr/bin/big"),
        Node("dev-null", "char"),
        Node("pipe", "fifo"),
    ]


def read_via_toc(toc, path: str, blob: bytes, file_range=None) -> bytes:  # type: ignore[no-untyped-def]
    """File bytes from the TOC's compressed ranges only (imageformat.fileread.read_file)."""
    from imageformat.fileread import read_file

    def fetch(ranges):  # type: ignore[no-untyped-def]
        return [blob[r.start : r.stop] for r in ranges]

    return bytes(read_file(toc, path, fetch, file_range))
