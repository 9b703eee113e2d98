"""Node caches for the lazy store: memory and on-disk, size-limited, LRU eviction, thread-safe.

One cache object per emulated node is shared by every pod (every `LazyStore`) on it. Keys are
opaque strings chosen by the store (they name the layer and the bytes). The store puts only
verified decoded content (and, in block mode, raw compressed blocks, which are re-verified when
decoded). Disk writes go to a temp file in the same directory and are renamed into place
(`os.replace` is atomic on POSIX), so a crash or a fault mid-write leaves no half-written entry;
stale temp files are removed when the cache opens.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import queue
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

TMP_SUFFIX = ".tmp"
WRITER_IDLE_S = 1.0  # a TieredCache's disk writer thread ends after this long without work
PENDING_MAX_BYTES = 64 << 20  # not yet on disk: beyond this a put waits for the writer


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes) -> None: ...

    def discard(self, key: str) -> None: ...

    @property
    def size_bytes(self) -> int: ...


class MemoryCache:
    """An in-memory LRU bounded by `capacity_bytes` (an entry larger than that is not kept)."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes (={capacity_bytes}) must be >= 0")
        self.capacity_bytes = capacity_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.evictions = 0

    @property
    def size_bytes(self) -> int:
        return self._size

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.capacity_bytes:
            self.discard(key)  # never leave an older value behind under this key
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = data
            self._size += len(data)
            while self._size > self.capacity_bytes:
                _, victim = self._items.popitem(last=False)
                self._size -= len(victim)
                self.evictions += 1

    def discard(self, key: str) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)


class DiskCache:
    """Files under `root`, named by sha256(key); LRU by access, bounded by `capacity_bytes`."""

    def __init__(self, root: str | Path, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes (={capacity_bytes}) must be >= 0")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.capacity_bytes = capacity_bytes
        self._index: OrderedDict[str, int] = OrderedDict()  # file name -> size
        self._size = 0
        self._lock = threading.Lock()
        self.evictions = 0
        for p in sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime):
            if p.name.endswith(TMP_SUFFIX):
                p.unlink(missing_ok=True)  # left by an interrupted write: never an entry
            elif p.is_file():
                self._index[p.name] = p.stat().st_size
                self._size += p.stat().st_size

    @staticmethod
    def _name(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @property
    def size_bytes(self) -> int:
        return self._size

    def get(self, key: str) -> bytes | None:
        name = self._name(key)
        with self._lock:
            if name not in self._index:
                return None
            self._index.move_to_end(name)
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            with self._lock:
                self._forget(name)
            return None

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.capacity_bytes:
            self.discard(key)
            return
        name = self._name(key)
        tmp = self.root / f"{name}.{threading.get_ident()}.{os.getpid()}{TMP_SUFFIX}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.root / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:
            self._forget(name)
            self._index[name] = len(data)
            self._size += len(data)
            while self._size > self.capacity_bytes and self._index:
                victim, _ = next(iter(self._index.items()))
                self._forget(victim)
                (self.root / victim).unlink(missing_ok=True)
                self.evictions += 1

    def discard(self, key: str) -> None:
        name = self._name(key)
        with self._lock:
            self._forget(name)
        (self.root / name).unlink(missing_ok=True)

    def _forget(self, name: str) -> None:
        size = self._index.pop(name, None)
        if size is not None:
            self._size -= size


class TieredCache:
    """Memory in front of disk: hits on disk are promoted; puts go to both.

    A put is in memory (and readable) at once; its disk write is left to one writer thread, so a
    reader waiting for a fetched unit does not wait for a file to be written (~70 us per entry
    here). Until written an entry is served from the pending writes; `flush` (and interpreter exit)
    waits for them, and a put waits while PENDING_MAX_BYTES are not yet on disk (backpressure). A
    failed disk write leaves no entry (the disk cache's temp file + rename) and is counted in
    `disk_write_errors`; the entry stays in memory."""

    def __init__(self, memory: MemoryCache, disk: DiskCache | None = None) -> None:
        self.memory = memory
        self.disk = disk
        self.disk_write_errors = 0
        self._pending: dict[str, bytes] = {}  # key -> data not yet on disk (newest put)
        self._pending_bytes = 0
        self._changed = threading.Condition()  # guards _pending; notified when a write is done
        self._disk_lock = threading.Lock()  # one disk write or discard at a time
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_pid = 0

    @property
    def size_bytes(self) -> int:
        return self.memory.size_bytes + (self.disk.size_bytes if self.disk else 0)

    def get(self, key: str) -> bytes | None:
        data = self.memory.get(key)
        if data is None and self.disk is not None:
            with self._changed:
                data = self._pending.get(key)
            if data is None:
                data = self.disk.get(key)
            if data is not None:
                self.memory.put(key, data)
        return data

    def put(self, key: str, data: bytes) -> None:
        self.memory.put(key, data)
        if self.disk is None:
            return
        with self._changed:
            if self._writer is None or self._writer_pid != os.getpid():  # (none in a forked child)
                # (the writer stops after WRITER_IDLE_S without work)
                self._writer_pid = os.getpid()
                self._writer = threading.Thread(target=self._write_pending, name="cache-writer", daemon=True)
                self._writer.start()
                atexit.register(self.flush)  # daemon threads still run during atexit
            while self._pending and self._pending_bytes + len(data) > PENDING_MAX_BYTES:
                self._changed.wait()  # backpressure: the disk is this far behind
            old = self._pending.get(key)
            queued = old is not None  # its queued write will take the newest data
            self._pending[key] = data
            self._pending_bytes += len(data) - (len(old) if old is not None else 0)
        if not queued:
            self._queue.put(key)

    def discard(self, key: str) -> None:
        self.memory.discard(key)
        if self.disk is not None:
            with self._disk_lock:  # after a write of this key in progress, never before it
                with self._changed:
                    self._pending_bytes -= len(self._pending.pop(key, b""))
                    self._changed.notify_all()
                self.disk.discard(key)

    def flush(self) -> None:
        """Wait until every put so far is on disk (or failed to get there)."""
        with self._changed:
            while self._pending:
                self._changed.wait()

    def _write_pending(self) -> None:
        assert self.disk is not None
        while True:
            try:
                key = self._queue.get(timeout=WRITER_IDLE_S)
            except queue.Empty:
                with self._changed:
                    if not self._pending:
                        self._writer = None
                        atexit.unregister(self.flush)
                        return
                continue
            with self._disk_lock:
                with self._changed:
                    data = self._pending.get(key)
                if data is None:
                    continue  # discarded meanwhile
                try:
                    self.disk.put(key, data)
                except Exception:  # disk full, say: the entry is just not on disk (no half of it either)
                    self.disk_write_errors += 1
                with self._changed:
                    if self._pending.get(key) is data:
                        del self._pending[key]
                        self._pending_bytes -= len(data)
                    elif key in self._pending:
                        self._queue.put(key)  # a newer put came while this one was written
                    self._changed.notify_all()


def make_node_cache(
    *, memory_bytes: int = 256 << 20, disk_dir: str | Path | None = None, disk_bytes: int = 4 << 30
) -> TieredCache:
    """The cache one emulated node shares between its pods."""
    return TieredCache(MemoryCache(memory_bytes), DiskCache(disk_dir, disk_bytes) if disk_dir else None)
