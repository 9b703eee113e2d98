"""Walk a tar exactly as Go's `archive/tar` (and so containers/storage) sees it.

For every entry: the header fields Go derives (PAX `x` records and GNU `L`/`K` long names
folded in, full-precision PAX times, `SCHILY.xattr.*` as raw bytes) and where its raw header
bytes and payload live in the tar. The raw header bytes of a member are
`T[header_start:data_start]`, where `header_start` is the previous member's payload end: they
include the previous payload's padding, as tar-split accounts them (spec formats.md §1.13).

Unlike Python's `tarfile`, a PAX global header (`g`), GNU sparse files (old `S` or PAX
`GNU.sparse.*`) and any typeflag other than 0/NUL/1-6 raise `UnsupportedEntryError`
(containers/storage refuses them). Payloads are skipped by seeking, never read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from imageformat.errors import InvalidTarError, UnsupportedEntryError

BLOCK = 512
MAX_EXTENSION_BYTES = 16 << 20  # PAX / GNU long-name data larger than this is refused (Go: 1 MiB)
_HEADER_ONLY = frozenset(b"123456")  # hardlink, symlink, char, block, dir, fifo: no payload
_REG = frozenset(b"0\x00")
TYPE_NAMES = {
    ord("0"): "reg",
    0: "reg",
    ord("1"): "hardlink",
    ord("2"): "symlink",
    ord("3"): "char",
    ord("4"): "block",
    ord("5"): "dir",
    ord("6"): "fifo",
}


@dataclass(frozen=True, slots=True)
class TarMember:
    """One tar entry as Go's reader returns it, plus its place in the tar."""

    name: str  # verbatim (after long-name resolution); non-UTF-8 bytes kept as surrogates
    typeflag: int  # normalised: NUL -> '0' or '5' (trailing slash), as Go does
    linkname: str
    mode: int
    uid: int
    gid: int
    size: int  # the header's size field (PAX `size` wins)
    mtime_ns: int
    atime_ns: int | None  # None = absent (Go's zero time)
    ctime_ns: int | None
    devmajor: int
    devminor: int
    xattrs: dict[str, bytes] = field(default_factory=dict)
    header_start: int = 0  # = previous member's payload end
    data_start: int = 0  # first payload byte (= end of the raw header bytes)
    payload_size: int = 0  # bytes of payload in the stream (0 for header-only types)

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.typeflag]

    @property
    def is_reg(self) -> bool:
        return self.typeflag == ord("0")

    @property
    def payload_end(self) -> int:
        return self.data_start + self.payload_size

    @property
    def name_bytes(self) -> bytes:
        return self.name.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class TarIndex:
    members: list[TarMember]
    entries_end: int  # payload end of the last member (start of its padding), 0 if none
    eoa_end: int  # just past the two zero blocks (or entries_end rounded up if they are absent)
    total_size: int  # size of the whole input, trailing bytes included

    @property
    def trailing(self) -> int:
        """Bytes after the end-of-archive marker (e.g. record padding)."""
        return self.total_size - self.eoa_end


def _str(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _num(b: bytes, what: str) -> int:
    """Go's parseNumeric: base-256 when the top bit is set, else octal (spaces/NULs trimmed)."""
    if b and b[0] & 0x80:
        inv = 0xFF if b[0] & 0x40 else 0
        value = 0
        for i, c in enumerate(b):
            c ^= inv
            if i == 0:
                c &= 0x7F
            value = (value << 8) | c
        return ~value if inv else value
    s = b.strip(b" \x00")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise InvalidTarError(f"invalid octal {what} field {b!r}") from None


def parse_pax_time(value: str) -> int:
    """Go's parsePAXTime: `secs[.frac]` -> nanoseconds, extra digits truncated."""
    secs_s, _, frac = value.partition(".")
    try:
        secs = int(secs_s)
    except ValueError:
        raise InvalidTarError(f"invalid PAX time {value!r}") from None
    if frac and not frac.isdigit():
        raise InvalidTarError(f"invalid PAX time {value!r}")
    nsecs = int((frac + "000000000")[:9]) if frac else 0
    if secs_s.startswith("-"):
        nsecs = -nsecs
    return secs * 1_000_000_000 + nsecs


def parse_pax_records(data: bytes) -> dict[str, bytes]:
    """PAX extended header records `"%d %s=%s\\n"` (later records win), values kept as bytes."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # NUL padding after the records is tolerated
            break
        sp = data.find(b" ", pos, pos + 32)
        if sp < 0:
            raise InvalidTarError("malformed PAX record: no length")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise InvalidTarError(f"malformed PAX record length {data[pos:sp]!r}") from None
        end = pos + length
        if length <= sp - pos + 1 or end > len(data) or data[end - 1] != 0x0A:
            raise InvalidTarError("malformed PAX record: bad length")
        rec = data[sp + 1 : end - 1]
        key, eq, value = rec.partition(b"=")
        if not eq or not key:
            raise InvalidTarError(f"malformed PAX record {rec[:40]!r}")
        out[key.decode("utf-8", "surrogateescape")] = value
        pos = end
    return out


def _checksum_ok(blk: bytes) -> bool:
    stored = _num(blk[148:156], "checksum")
    body = blk[:148] + b"        " + blk[156:]
    unsigned = sum(body)
    if stored == unsigned:
        return True
    return stored == unsigned - 256 * sum(1 for c in body if c > 127)  # old signed-char writers


def _read_exact(f: BinaryIO, pos: int, n: int, what: str) -> bytes:
    f.seek(pos)
    data = f.read(n)
    if len(data) != n:
        raise InvalidTarError(f"tar truncated in {what} at offset {pos}")
    return data


def _file_size(f: BinaryIO) -> int:
    cur = f.tell()
    size = f.seek(0, os.SEEK_END)
    f.seek(cur)
    return size


def iter_tar(f: BinaryIO) -> Iterator[TarMember | TarIndex]:
    """Yield each member in archive order, then one final `TarIndex` (whose member list is empty)."""
    total = _file_size(f)
    pos = 0  # next block to read (always block aligned)
    prev_end = 0  # payload end of the previous member
    pax: dict[str, bytes] = {}
    long_name: bytes | None = None
    long_link: bytes | None = None
    while True:
        if pos + BLOCK > total:
            if pos < total:
                raise InvalidTarError(f"tar truncated: partial header block at offset {pos}")
            yield TarIndex(members=[], entries_end=prev_end, eoa_end=pos, total_size=total)
            return
        blk = _read_exact(f, pos, BLOCK, "header")
        if blk == bytes(BLOCK):
            if pax or long_name is not None or long_link is not None:
                raise InvalidTarError(f"extension header without an entry before offset {pos}")
            second = total - (pos + BLOCK)
            if second >= BLOCK and _read_exact(f, pos + BLOCK, BLOCK, "end") != bytes(BLOCK):
                raise InvalidTarError(f"a single zero block at offset {pos} followed by data")
            eoa_end = pos + 2 * BLOCK if second >= BLOCK else pos + BLOCK
            yield TarIndex(members=[], entries_end=prev_end, eoa_end=eoa_end, total_size=total)
            return
        if not _checksum_ok(blk):
            raise InvalidTarError(f"tar header checksum mismatch at offset {pos}")
        flag = blk[156]
        size = _num(blk[124:136], "size")
        if size < 0:
            raise InvalidTarError(f"negative size at offset {pos}")
        data_pos = pos + BLOCK
        if flag in b"xgLK":
            if size > MAX_EXTENSION_BYTES:
                raise InvalidTarError(f"extension header of {size} bytes at offset {pos}")
            if flag == ord("g"):
                raise UnsupportedEntryError(
                    f"PAX global header at offset {pos}: containers/storage refuses such tars"
                )
            data = _read_exact(f, data_pos, size, "extension header")
            if flag == ord("x"):
                pax.update(parse_pax_records(data))
            elif flag == ord("L"):
                long_name = data.split(b"\0", 1)[0]
            else:
                long_link = data.split(b"\0", 1)[0]
            pos = data_pos + -(-size // BLOCK) * BLOCK
            continue
        member = _member(blk, flag, size, pax, long_name, long_link, prev_end, data_pos, pos)
        yield member
        prev_end = member.payload_end
        pos = data_pos + -(-member.payload_size // BLOCK) * BLOCK
        if prev_end > total:
            raise InvalidTarError(f"tar truncated: payload ends at {prev_end} > size {total}")
        pax, long_name, long_link = {}, None, None


def _member(
    blk: bytes,
    flag: int,
    size: int,
    pax: dict[str, bytes],
    long_name: bytes | None,
    long_link: bytes | None,
    prev_end: int,
    data_pos: int,
    pos: int,
) -> TarMember:
    if any(k.startswith("GNU.sparse.") for k in pax):
        raise UnsupportedEntryError(f"GNU sparse file (PAX) at offset {pos}")
    if flag == ord("S"):
        raise UnsupportedEntryError(f"GNU sparse file at offset {pos}")
    if flag not in _REG and flag not in _HEADER_ONLY:
        raise UnsupportedEntryError(f"unsupported tar typeflag {chr(flag)!r} at offset {pos}")
    name = _str(blk[0:100])
    linkname = _str(blk[157:257])
    magic, version = blk[257:263], blk[263:265]
    atime: int | None = None
    ctime: int | None = None
    devmajor = devminor = 0
    if magic == b"ustar\x00" or magic == b"ustar ":
        devmajor = _num(blk[329:337], "devmajor")
        devminor = _num(blk[337:345], "devminor")
        prefix = ""
        if magic == b"ustar\x00" and version == b"00":
            if blk[508:512] == b"tar\x00":  # star
                prefix = _str(blk[345:476])
                atime = _num(blk[476:488], "atime") * 1_000_000_000
                ctime = _num(blk[488:500], "ctime") * 1_000_000_000
            else:
                prefix = _str(blk[345:500])
        elif magic == b"ustar " and version == b" \x00":
            if blk[345] != 0:
                atime = _num(blk[345:357], "atime") * 1_000_000_000
            if blk[357] != 0:
                ctime = _num(blk[357:369], "ctime") * 1_000_000_000
        if prefix:
            name = prefix + "/" + name
    mode = _num(blk[100:108], "mode")
    uid = _num(blk[108:116], "uid")
    gid = _num(blk[116:124], "gid")
    mtime = _num(blk[136:148], "mtime") * 1_000_000_000
    xattrs: dict[str, bytes] = {}
    for key, raw in pax.items():
        value = raw.decode("utf-8", "surrogateescape")
        try:
            if key == "path":
                name = value
            elif key == "linkpath":
                linkname = value
            elif key == "uid":
                uid = int(value)
            elif key == "gid":
                gid = int(value)
            elif key == "size":
                size = int(value)
            elif key == "mtime":
                mtime = parse_pax_time(value)
            elif key == "atime":
                atime = parse_pax_time(value)
            elif key == "ctime":
                ctime = parse_pax_time(value)
            elif key.startswith("SCHILY.xattr."):
                xattrs[key[len("SCHILY.xattr.") :]] = raw
        except ValueError:
            raise InvalidTarError(f"invalid PAX {key}={value[:40]!r} at offset {pos}") from None
    if size < 0:
        raise InvalidTarError(f"negative size at offset {pos}")
    if long_name is not None:
        name = long_name.decode("utf-8", "surrogateescape")
    if long_link is not None:
        linkname = long_link.decode("utf-8", "surrogateescape")
    if flag == 0:
        flag = ord("5") if name.endswith("/") else ord("0")
    payload = 0 if flag in _HEADER_ONLY else size
    return TarMember(
        name=name,
        typeflag=flag,
        linkname=linkname,
        mode=mode,
        uid=uid,
        gid=gid,
        size=size,
        mtime_ns=mtime,
        atime_ns=atime,
        ctime_ns=ctime,
        devmajor=devmajor,
        devminor=devminor,
        xattrs=dict(sorted(xattrs.items())),
        header_start=prev_end,
        data_start=data_pos,
        payload_size=payload,
    )


def scan_tar(f: BinaryIO) -> TarIndex:
    """All members of the tar in `f` (seekable) and where its end-of-archive and trailing bytes are."""
    members: list[TarMember] = []
    for item in iter_tar(f):
        if isinstance(item, TarIndex):
            return TarIndex(
                members=members,
                entries_end=item.entries_end,
                eoa_end=item.eoa_end,
                total_size=item.total_size,
            )
        members.append(item)
    raise AssertionError("iter_tar always ends with a TarIndex")


__all__ = ["TarIndex", "TarMember", "iter_tar", "parse_pax_records", "parse_pax_time", "scan_tar"]
