"""An emulated node: what every pod started on one machine shares.

One HTTP client (connection pool, auth state), one chunk cache (memory + disk) for lazy
stores, one set of node counters, a work directory for full/partial roots, and the index of
content earlier partial pulls left on the node (files by digest, chunks by chunkDigest -> a
local file and offset: containers/storage's reuse lookup, formats.md §2.4 step 3-4). Lazy
stores are kept per image reference, so a second pod of the same image reuses the mount.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.cache import TieredCache, make_node_cache
from emulator.client import ClientOptions, RegistryClient
from emulator.counters import CounterSet
from emulator.prefetch import BackgroundFetcher
from emulator.recorder import NullRecorder, Recorder
from emulator.store import LazyStore
from startup.modes import PullMode


@dataclass(frozen=True, slots=True)
class LocalContent:
    path: Path  # a file in an earlier pull's root
    offset: int
    size: int


@dataclass
class ContentIndex:
    """Digest -> where identical bytes already are on this node (verified again before use)."""

    files: dict[str, LocalContent] = field(default_factory=dict)
    chunks: dict[str, LocalContent] = field(default_factory=dict)

    def lookup(self, digest: str | None, *, chunk: bool) -> bytes | None:
        """The local bytes with this digest, re-hashed (a stale entry is dropped), or None."""
        if not digest:
            return None
        table = self.chunks if chunk else self.files
        hit = table.get(digest)
        if hit is None:
            return None
        try:
            with open(hit.path, "rb") as fh:
                fh.seek(hit.offset)
                data = fh.read(hit.size)
        except OSError:
            table.pop(digest, None)
            return None
        if len(data) != hit.size or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            table.pop(digest, None)
            return None
        return data


class EmulatedNode:
    """Use inside one event loop; `close()` stops background fetches and the HTTP pool."""

    def __init__(
        self,
        name: str,
        work_dir: str | Path,
        *,
        client_options: ClientOptions | None = None,
        cache_memory_bytes: int = 256 << 20,
        cache_disk_bytes: int = 4 << 30,
        disk_cache: bool = True,
        recorder: Recorder | None = None,
        config_root: str | Path | None = None,
        state_file: str | Path | None = None,
    ) -> None:
        self.name = name
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.recorder = recorder or NullRecorder()
        self.client = RegistryClient(client_options, recorder=self.recorder)
        self.cache: TieredCache = make_node_cache(
            memory_bytes=cache_memory_bytes,
            disk_dir=self.work_dir / "cache" if disk_cache else None,
            disk_bytes=cache_disk_bytes,
        )
        self.counters = CounterSet()
        self.index = ContentIndex()
        self.stores: dict[str, LazyStore] = {}
        self.store_locks: dict[str, asyncio.Lock] = {}
        self.background: list[BackgroundFetcher] = []
        self.pull_gate: asyncio.Semaphore | None = None  # set to serialize pulls (kubelet default)
        self._tasks: set[asyncio.Task[None]] = set()
        self._roots = 0
        self.local_roots: list[Path] = []  # roots of full/partial pulls (images not in the store)
        self.config_root = Path(config_root) if config_root is not None else None
        self.state_file = Path(state_file) if state_file is not None else None
        self.pull_mode: PullMode | None = None  # set by boot(): the configuration's pull mode
        self.boot_log: list[Any] = []  # emulator.nodeboot.BootRecord, one per boot()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` beside the pods (kept referenced; cancelled by close())."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def new_root(self, label: str) -> Path:
        self._roots += 1
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:60]
        root = self.work_dir / "roots" / f"{self._roots:04d}-{safe}"
        root.mkdir(parents=True, exist_ok=False)
        self.local_roots.append(root)
        return root

    async def boot(self) -> Any:
        """Read the configuration root, run check-layer-state (`emulator.nodeboot.boot_node`)."""
        from emulator.nodeboot import boot_node  # nodeboot builds on this module

        if self.config_root is None:
            raise ValueError(f"node {self.name}: boot() needs config_root")
        return await boot_node(self, self.config_root, state_file=self.state_file)

    def index_root(
        self, root: Path, files: dict[str, tuple[str | None, list[tuple[str | None, int, int]]]]
    ) -> None:
        """Remember a pulled root: path -> (file digest, [(chunk digest, offset, size)])."""
        for rel, (digest, chunks) in files.items():
            host = root / rel
            if not os.path.isfile(host) or os.path.islink(host):
                continue
            size = host.stat().st_size
            if digest:
                self.index.files.setdefault(digest, LocalContent(host, 0, size))
            for cd, off, n in chunks:
                if cd:
                    self.index.chunks.setdefault(cd, LocalContent(host, off, n))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for bg in self.background:
            await bg.stop()
        self.background.clear()
        await self.client.close()
        await asyncio.to_thread(self.cache.flush)  # the disk cache complete before the node is gone
