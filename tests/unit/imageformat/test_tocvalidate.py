"""TOCs that lie are refused with a specific error, before any wrong byte is produced."""

from __future__ import annotations

import json

import pytest
from zc_support import parse, replace_toc, vector

from imageformat.errors import (
    DuplicateEntryError,
    TocError,
    TocTooLargeError,
    TruncatedLayerError,
    UnsafePathError,
)


def _entries(name: str = "a/rich") -> tuple[bytes, dict[str, str], list[dict]]:  # type: ignore[type-arg]
    v = vector(name)
    return v.blob, v.annotations, json.loads(v.toc_json)["entries"]


def _forge(entries: list[dict], name: str = "a/rich", extra: dict | None = None):  # type: ignore[no-untyped-def, type-arg]
    blob, ann, _ = _entries(name)
    doc = {"version": 1, "entries": entries, **(extra or {})}
    return replace_toc(blob, ann, json.dumps(doc, separators=(",", ":")).encode())


def _find(entries: list[dict], name: str) -> dict:  # type: ignore[type-arg]
    return next(e for e in entries if e["name"] == name and e["type"] != "chunk")


def test_unmodified_forgery_is_accepted() -> None:
    blob, ann = _forge(_entries()[2])
    _, toc = parse(blob, ann)
    assert len(toc.entries) == 14


def test_offset_past_the_end() -> None:
    entries = _entries()[2]
    _find(entries, "etc/hello")["endOffset"] = 10**9
    blob, ann = _forge(entries)
    with pytest.raises(TruncatedLayerError):
        parse(blob, ann)


def test_chunk_range_overlapping_the_toc() -> None:
    _blob0, _ann0, entries = _entries()
    blob, ann = _forge(entries)
    toc_start = int(ann["io.containers.zstd-chunked.manifest-position"].split(":")[0])
    _find(entries, "etc/hello")["endOffset"] = toc_start + 4
    blob, ann = _forge(entries)
    with pytest.raises(TocError, match="overlaps the TOC"):
        parse(blob, ann)


def test_overlapping_chunks_of_two_files() -> None:
    entries = _entries()[2]
    hello = _find(entries, "etc/hello")
    xattr = _find(entries, "etc/xattr-file")
    xattr["offset"] = hello["offset"]
    blob, ann = _forge(entries)
    with pytest.raises(TocError, match="overlap"):
        parse(blob, ann)


def test_chunk_sizes_that_do_not_tile_the_file() -> None:
    entries = _entries()[2]
    sparse_chunks = [e for e in entries if e["name"] == "var/sparse"]
    sparse_chunks[2]["chunkSize"] += 1
    blob, ann = _forge(entries)
    with pytest.raises(TocError, match=r"tile|cover"):
        parse(blob, ann)


def test_size_that_disagrees_with_chunks() -> None:
    entries = _entries()[2]
    _find(entries, "var/sparse")["size"] += 7
    blob, ann = _forge(entries)
    with pytest.raises(TocError):
        parse(blob, ann)


def test_orphan_chunk_entry() -> None:
    entries = _entries()[2]
    i = next(i for i, e in enumerate(entries) if e["type"] == "chunk")
    entries.insert(0, entries.pop(i))
    blob, ann = _forge(entries)
    with pytest.raises(TocError, match="not preceded"):
        parse(blob, ann)


@pytest.mark.parametrize("bad", ["../etc/passwd", "etc/../../x", "/etc/passwd"])
def test_unsafe_names(bad: str) -> None:
    entries = _entries()[2]
    entries.append({"type": "dir", "name": bad, "mode": 493})
    blob, ann = _forge(entries)
    with pytest.raises(UnsafePathError):
        parse(blob, ann)


def test_symlink_escape_and_writes_through_symlinks() -> None:
    entries = _entries()[2]
    entries.append({"type": "symlink", "name": "etc/evil", "linkName": "../../../root"})
    blob, ann = _forge(entries)
    with pytest.raises(UnsafePathError, match="escapes"):
        parse(blob, ann)
    entries = _entries()[2]
    entries.append({"type": "dir", "name": "etc/link-to-hello/sub"})
    blob, ann = _forge(entries)
    with pytest.raises(UnsafePathError, match="below the symlink"):
        parse(blob, ann)


def test_hardlink_escape_and_dangling_hardlink() -> None:
    entries = _entries()[2]
    entries.append({"type": "hardlink", "name": "x", "linkName": "../../etc/shadow"})
    blob, ann = _forge(entries)
    with pytest.raises(UnsafePathError):
        parse(blob, ann)
    entries = _entries()[2]
    entries.append({"type": "hardlink", "name": "x", "linkName": "nowhere"})
    blob, ann = _forge(entries)
    with pytest.raises(TocError, match="no earlier entry"):
        parse(blob, ann)


def test_duplicate_entries_with_a_tar_split() -> None:
    entries = _entries("b/rich")[2]
    entries.append(dict(_find(entries, "etc/empty")))
    blob, ann = _forge(entries, extra={"tarSplitDigest": "sha256:" + "0" * 64})
    with pytest.raises(DuplicateEntryError):
        parse(blob, ann)


def test_absurd_entry_count_is_refused_before_decompressing() -> None:
    blob, ann, _ = _entries()
    forged, fann = replace_toc(blob, ann, b'{"version":1,"entries":[]}', declared=151 << 20)
    with pytest.raises(TocTooLargeError):
        parse(forged, fann)


def test_bad_field_types() -> None:
    entries = _entries()[2]
    _find(entries, "etc/hello")["mode"] = "rwx"
    blob, ann = _forge(entries)
    with pytest.raises(TocError):
        parse(blob, ann)
    entries = _entries()[2]
    _find(entries, "etc/xattr-file")["xattrs"] = {"user.x": "%%%"}
    blob, ann = _forge(entries)
    with pytest.raises(TocError, match="base64"):
        parse(blob, ann)
