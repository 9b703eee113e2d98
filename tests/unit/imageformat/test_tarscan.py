"""The tar walker sees what Go's archive/tar sees, and refuses what containers/storage refuses."""

from __future__ import annotations

import io
import tarfile

import pytest

from imageformat.errors import InvalidTarError, UnsupportedEntryError
from imageformat.tarscan import parse_pax_time, scan_tar


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _info(name: str, type_: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def test_raw_header_bytes_and_payloads_tile_the_tar() -> None:
    long = "d/" + "n" * 150
    tar = _tar(
        [
            (_info("dir/", tarfile.DIRTYPE, mode=0o755), b""),
            (_info(long, mtime=1700000000.5), b"hello"),
            (_info("link", tarfile.SYMTYPE, linkname="l" * 120), b""),
        ]
    )
    idx = scan_tar(io.BytesIO(tar))
    rebuilt = b""
    for m in idx.members:
        rebuilt += tar[m.header_start : m.data_start] + tar[m.data_start : m.payload_end]
    rebuilt += tar[idx.entries_end :]
    assert rebuilt == tar
    names = [m.name for m in idx.members]
    assert names == ["dir/", long, "link"]  # trailing slash kept, PAX path resolved
    assert idx.members[1].mtime_ns == 1_700_000_000_500_000_000
    assert idx.members[2].linkname == "l" * 120
    assert idx.eoa_end - idx.entries_end >= 1024 and idx.total_size == len(tar)


def test_gnu_long_names_and_ustar_prefix() -> None:
    long = "x" * 130
    gnu = scan_tar(io.BytesIO(_tar([(_info(long), b"a")], fmt=tarfile.GNU_FORMAT)))
    assert gnu.members[0].name == long
    prefixed = "p" * 90 + "/" + "q" * 90
    ustar = scan_tar(io.BytesIO(_tar([(_info(prefixed), b"a")], fmt=tarfile.USTAR_FORMAT)))
    assert ustar.members[0].name == prefixed


def test_xattrs_keep_raw_bytes() -> None:
    ti = _info("f")
    ti.pax_headers = {"SCHILY.xattr.user.v": "\udcff\x00x"}
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tf:
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"z"))
    m = scan_tar(io.BytesIO(buf.getvalue())).members[0]
    assert m.xattrs == {"user.v": b"\xff\x00x"}


def test_pax_global_header_is_refused() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "git"}) as tf:
        ti = _info("f")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"z"))
    with pytest.raises(UnsupportedEntryError, match="global"):
        scan_tar(io.BytesIO(buf.getvalue()))


def test_gnu_sparse_is_refused() -> None:
    tar = bytearray(_tar([(_info("f"), b"z" * 10)], fmt=tarfile.GNU_FORMAT))
    tar[156] = ord("S")
    tar[148:156] = b"        "
    tar[148:156] = b"%06o\0 " % sum(tar[:512])
    with pytest.raises(UnsupportedEntryError):
        scan_tar(io.BytesIO(bytes(tar)))
    ti = _info("g")
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "g"}
    with pytest.raises(UnsupportedEntryError):
        scan_tar(io.BytesIO(_tar([(ti, b"z")])))


def test_contiguous_typeflag_is_refused() -> None:
    with pytest.raises(UnsupportedEntryError):
        scan_tar(io.BytesIO(_tar([(_info("c", tarfile.CONTTYPE), b"")])))


def test_corrupt_and_truncated_tars() -> None:
    tar = _tar([(_info("f"), b"z" * 2000)])
    bad = bytearray(tar)
    bad[0] ^= 0x01
    with pytest.raises(InvalidTarError, match="checksum"):
        scan_tar(io.BytesIO(bytes(bad)))
    with pytest.raises(InvalidTarError, match="truncated"):
        scan_tar(io.BytesIO(tar[:1000]))
    with pytest.raises(InvalidTarError):
        scan_tar(io.BytesIO(tar[:300]))


def test_no_end_of_archive_marker_is_accepted() -> None:
    tar = _tar([(_info("f"), b"z" * 512)])
    idx = scan_tar(io.BytesIO(tar[:1024]))
    assert len(idx.members) == 1 and idx.eoa_end == 1024 and idx.trailing == 0


@pytest.mark.parametrize(
    ("text", "ns"),
    [("1", 1_000_000_000), ("1.5", 1_500_000_000), ("1.1234567891", 1_123_456_789), ("-1.5", -1_500_000_000)],
)
def test_pax_time_as_go(text: str, ns: int) -> None:
    assert parse_pax_time(text) == ns
