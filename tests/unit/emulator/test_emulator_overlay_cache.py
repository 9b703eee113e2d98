"""Overlay merge (whiteouts, opaque dirs, hardlinks, symlink resolution) and the node caches."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.cache import DiskCache, MemoryCache, TieredCache
from emulator.overlay import MergedTree
from imageformat.byterange import ByteRange
from imageformat.toc import Chunk, Compression, EntryType, LayerFormat, Toc, TocEntry


def _toc(*entries: tuple[str, EntryType] | tuple[str, EntryType, str]) -> Toc:
    out = []
    for e in entries:
        path, kind = e[0], e[1]
        link = e[2] if len(e) > 2 else ""
        size = 5 if kind is EntryType.REG else 0
        chunks = (Chunk(0, 5, ByteRange(0, 10), "sha256:" + "0" * 64),) if size else ()
        out.append(
            TocEntry(path=path, name=path, type=kind, mode=0o644, size=size, link_name=link, chunks=chunks)
        )
    return Toc(
        format=LayerFormat.ZSTD_CHUNKED,
        compression=Compression.ZSTD,
        entries=tuple(out),
        digest="sha256:" + "1" * 64,
        toc_range=ByteRange(0, 1),
    )


R, D, L, H = EntryType.REG, EntryType.DIR, EntryType.SYMLINK, EntryType.HARDLINK


def test_whiteouts_opaque_and_replacement() -> None:
    lower = _toc(
        ("etc", D),
        ("etc/a", R),
        ("etc/b", R),
        ("var", D),
        ("var/x", R),
        ("var/sub", D),
        ("var/sub/y", R),
        ("opt", D),
        ("opt/z", R),
        ("bin", D),
        ("bin/sh", R),
    )
    upper = _toc(
        ("etc/.wh.a", R),
        ("var", D),
        ("var/.wh..wh..opq", R),
        ("var/new", R),
        ("opt", R),
        ("bin/sh", L, "busybox"),
        ("bin/busybox", R),
        ("bin/ash", H, "bin/busybox"),
    )
    t = MergedTree([lower, upper])
    assert t.listdir("etc") == ["b"]
    assert t.listdir("var") == ["new"]
    assert t.stat("opt").type is EntryType.REG  # a file replaced the directory and its subtree
    with pytest.raises(OSError) as e:
        t.stat("opt/z")
    assert e.value.errno == errno.ENOENT
    assert t.readlink("bin/sh") == "busybox"
    assert t.resolve("bin/sh") == "bin/busybox"
    assert t.stat("bin/ash").ino == t.stat("bin/busybox").ino and t.stat("bin/busybox").nlink == 2
    assert ".wh.a" not in t.listdir("etc") and "etc/.wh.a" not in t.nodes
    with pytest.raises(OSError) as e:
        t.listdir("bin/busybox")
    assert e.value.errno == errno.ENOTDIR


def test_symlink_resolution_stays_in_root_and_detects_loops() -> None:
    t = MergedTree(
        [
            _toc(
                ("usr", D),
                ("usr/bin", D),
                ("usr/bin/tool", R),
                ("bin", L, "/usr/bin"),
                ("up", L, "../../../usr/bin/tool"),
                ("loop", L, "loop"),
            )
        ]
    )
    assert t.resolve("bin/tool") == "usr/bin/tool"
    assert t.resolve("up") == "usr/bin/tool"
    with pytest.raises(OSError) as e:
        t.resolve("loop")
    assert e.value.errno == errno.ELOOP
    assert set(t.listdir(".")) == {"usr", "bin", "up", "loop"}


def test_memory_cache_lru_and_limit() -> None:
    c = MemoryCache(10)
    c.put("a", b"12345")
    c.put("b", b"12345")
    assert c.get("a") == b"12345"  # a is now most recent
    c.put("c", b"123")
    assert c.get("b") is None and c.get("a") is not None and c.size_bytes <= 10
    c.put("huge", b"x" * 11)
    assert c.get("huge") is None


def test_disk_cache_atomic_and_persistent(tmp_path: Path) -> None:
    d = DiskCache(tmp_path, 100)
    d.put("k1", b"a" * 60)
    d.put("k2", b"b" * 30)
    (tmp_path / "leftover.123.tmp").write_bytes(b"half")
    d2 = DiskCache(tmp_path, 100)  # reopen: index rebuilt, temp files removed
    assert d2.get("k1") == b"a" * 60 and d2.get("k2") == b"b" * 30
    assert not list(tmp_path.glob("*.tmp"))
    d2.put("k3", b"c" * 50)  # evicts the least recently used
    assert d2.size_bytes <= 100 and d2.get("k3") == b"c" * 50
    t = TieredCache(MemoryCache(1000), d2)
    assert t.get("k3") == b"c" * 50 and t.memory.get("k3") == b"c" * 50


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 40)), max_size=40), st.integers(0, 100))
def test_memory_cache_never_exceeds_capacity(ops: list[tuple[str, int]], cap: int) -> None:
    c = MemoryCache(cap)
    model: dict[str, bytes] = {}
    for key, n in ops:
        data = key.encode() * n
        c.put(key, data)
        model[key] = data
        assert c.size_bytes <= cap
        got = c.get(key)
        assert got is None or got == model[key]


def test_parent_symlinks_are_followed_for_lookups() -> None:
    t = MergedTree([_toc(("usr", D), ("usr/bin", D), ("usr/bin/tool", R), ("bin", L, "usr/bin"))])
    assert t.stat("bin/tool").type is EntryType.REG
    assert t.listdir("bin") == ["tool"] and t.stat("bin").type is EntryType.SYMLINK
    assert t.regular(t.resolve("bin/tool"))[1].path == "usr/bin/tool"


def test_tiered_cache_serves_a_put_before_its_disk_write_and_flush_completes_it(tmp_path: Path) -> None:
    t = TieredCache(MemoryCache(10), DiskCache(tmp_path, 1000))
    t.put("a", b"a" * 8)
    t.put("b", b"b" * 8)  # evicts a from memory: served from the pending write or the disk
    assert t.get("a") == b"a" * 8
    t.flush()
    fresh = DiskCache(tmp_path, 1000)
    assert fresh.get("a") == b"a" * 8 and fresh.get("b") == b"b" * 8
    assert not list(tmp_path.glob("*.tmp"))


def test_tiered_cache_discard_and_newer_puts_win_over_queued_writes(tmp_path: Path) -> None:
    t = TieredCache(MemoryCache(1000), DiskCache(tmp_path, 1000))
    for i in range(50):
        t.put("k", bytes([i]) * 10)
        t.put(f"gone{i}", b"x")
        t.discard(f"gone{i}")
    t.flush()
    fresh = DiskCache(tmp_path, 1000)
    assert fresh.get("k") == bytes([49]) * 10
    assert all(fresh.get(f"gone{i}") is None for i in range(50))


def test_tiered_cache_counts_a_failed_disk_write_and_keeps_the_entry_in_memory(tmp_path: Path) -> None:
    disk = DiskCache(tmp_path / "d", 1000)
    t = TieredCache(MemoryCache(1000), disk)
    (tmp_path / "d").rmdir()  # the directory is gone: the write fails
    t.put("k", b"v")
    t.flush()
    assert t.disk_write_errors == 1 and t.get("k") == b"v"


def test_tiered_cache_puts_wait_while_the_disk_is_too_far_behind(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import emulator.cache as cache_mod

    monkeypatch.setattr(cache_mod, "PENDING_MAX_BYTES", 16)
    gate, writing = threading.Event(), threading.Event()

    class SlowDisk(DiskCache):
        def put(self, key: str, data: bytes) -> None:
            writing.set()
            gate.wait()
            super().put(key, data)

    t = TieredCache(MemoryCache(1000), SlowDisk(tmp_path, 1000))
    t.put("a", b"a" * 10)
    writing.wait()  # the writer holds "a" until the gate opens
    t.put("b", b"b" * 6)  # 16 bytes pending: still within the bound
    waiting = threading.Event()
    wait = t._changed.wait

    def noting_wait(timeout: float | None = None) -> bool:
        waiting.set()
        return wait(timeout)

    monkeypatch.setattr(t._changed, "wait", noting_wait)
    third = threading.Thread(target=t.put, args=("c", b"c"), daemon=True)
    third.start()
    assert waiting.wait(timeout=30)  # the third put found the disk too far behind and waits for it
    queued = set(t._pending)
    gate.set()
    third.join()
    assert queued == {"a", "b"}  # "c" was not queued while the writer was behind
    t.flush()
    fresh = DiskCache(tmp_path, 1000)
    assert (fresh.get("a"), fresh.get("b"), fresh.get("c")) == (b"a" * 10, b"b" * 6, b"c")
