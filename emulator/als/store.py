"""The store behind the ALS mount: references and layers resolved on demand, served lazily.

Blocking and thread-safe (FUSE calls it from its worker threads): every network step runs on
one asyncio loop in a background thread (`emulator.lazyview.LoopThread`). For a lookup of
`<ref>/<digest>` the store resolves the reference (manifest + config, cached per reference),
finds the layer whose compressed digest is `<digest>` — or, failing that, whose TOC digest is
(fetching the TOCs of the image's layers) — fetches and verifies that layer's TOC, and serves:
  * `diff/`: the layer's tree from a single-layer `LazyStore` (chunks fetched on first read),
    in overlay's on-disk form (`layerview`);
  * `info`: the JSON record of the convention the digest belongs to (`info`);
  * `blob`: the compressed blob, read by HTTP range. Blob bytes are the registry's, unverified
    per read (no chunk digest covers arbitrary blob ranges; c/storage verifies the whole blob
    when it exports it);
  * reference counts from `use` / `rmdir` (counted, reported; nothing is evicted on zero).
A layer that cannot be served (no TOC, unknown digest, registry error) is "absent" (ENOENT),
so containers/storage falls back to a normal pull.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from emulator.als.info import Convention, layer_info
from emulator.als.layerview import OverlayLayerView
from emulator.cache import make_node_cache
from emulator.client import ClientOptions, LayerDescriptor, RegistryClient, ResolvedImage
from emulator.counters import CounterSet, Purpose
from emulator.errors import EmulatorError
from emulator.lazyview import LazyView, LoopThread
from emulator.ranges import RangeFetcher
from emulator.reference import ImageReference, parse_reference
from emulator.store import LazyStore, StoreOptions
from emulator.tocfetch import fetch_toc
from imageformat.byterange import ByteRange
from imageformat.errors import FormatError
from imageformat.toc import Toc

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class AlsOptions:
    client: ClientOptions = field(default_factory=ClientOptions)
    store: StoreOptions = field(default_factory=StoreOptions)
    cache_memory_bytes: int = 256 << 20
    cache_dir: Path | None = None
    cache_disk_bytes: int = 4 << 30
    resolve_timeout_s: float = 30.0  # stargz-store's layer resolution budget
    read_timeout_s: float = 300.0  # stargz-store's fetching_timeout_sec


@dataclass
class ServedLayer:
    ref: str
    digest: str  # the digest in the path
    convention: Convention
    descriptor: LayerDescriptor
    toc: Toc
    info: bytes
    diff: OverlayLayerView
    image_ref: ImageReference
    refcount: int = 0
    uses: int = 0  # `use` signals received over the layer's life


def _absent(what: str) -> OSError:
    return OSError(errno.ENOENT, what)


class AdditionalLayerStore:
    def __init__(self, options: AlsOptions | None = None) -> None:
        self.options = options or AlsOptions()
        self.loop = LoopThread(name="lazylab-als")
        self.counters = CounterSet()
        self.cache = make_node_cache(
            memory_bytes=self.options.cache_memory_bytes,
            disk_dir=self.options.cache_dir,
            disk_bytes=self.options.cache_disk_bytes,
        )
        self._lock = threading.Lock()
        self._layers: dict[tuple[str, str], ServedLayer] = {}
        self._images: dict[str, ResolvedImage] = {}
        self._tocs: dict[tuple[str, str], Toc | None] = {}  # (ref, compressed digest) -> TOC
        self._client: RegistryClient | None = None
        self._fetcher: RangeFetcher | None = None
        self._async_lock: asyncio.Lock | None = None
        self.blob_bytes_read = 0

    # -- async core (runs on self.loop) ---------------------------------------------------------
    async def _setup(self) -> tuple[RegistryClient, RangeFetcher, asyncio.Lock]:
        if self._client is None or self._fetcher is None or self._async_lock is None:
            self._client = RegistryClient(self.options.client)
            self._fetcher = RangeFetcher(self._client, self.options.store.range_policy)
            self._async_lock = asyncio.Lock()
        return self._client, self._fetcher, self._async_lock

    async def _toc(self, ref: str, image_ref: ImageReference, layer: LayerDescriptor) -> Toc | None:
        key = (ref, layer.digest)
        if key not in self._tocs:
            _, fetcher, _ = await self._setup()
            toc, stats = await fetch_toc(fetcher, image_ref, layer)
            self.counters.layer(layer.digest).add_transfer(
                Purpose.TOC, stats.body_bytes, stats.requests, stats.ranges
            )
            self._tocs[key] = toc
        return self._tocs[key]

    async def _resolve_layer(self, ref: str, digest: str) -> ServedLayer:
        client, fetcher, lock = await self._setup()
        async with lock:  # one resolution at a time: lookups of diff/info/blob arrive together
            existing = self._layers.get((ref, digest))
            if existing is not None:
                return existing
            image_ref = parse_reference(ref)
            image = self._images.get(ref)
            if image is None:
                image = await client.resolve(image_ref)
                self._images[ref] = image
                log.info("resolved %s: %d layers", ref, len(image.layers))
            match = [(i, d) for i, d in enumerate(image.layers) if d.digest == digest]
            convention = Convention.COMPRESSED_DIGEST
            toc: Toc | None = None
            if match:
                toc = await self._toc(ref, image_ref, match[0][1])
            else:
                convention = Convention.TOC_DIGEST
                for i, d in enumerate(image.layers):
                    t = await self._toc(ref, image_ref, d)
                    if t is not None and t.digest == digest:
                        match, toc = [(i, d)], t
                        break
            if not match:
                raise _absent(f"{ref}: no layer with digest {digest}")
            _, desc = match[0]
            if toc is None:
                raise _absent(f"{ref}: layer {desc.digest} has no TOC (not lazy-pullable)")
            single = LazyStore(
                ref=image_ref,
                image=replace(image, layers=(desc,)),
                tocs=[toc],
                fetcher=fetcher,
                cache=self.cache,
                options=self.options.store,
                node_counters=self.counters,
            )
            info = layer_info(
                convention=convention,
                compressed_digest=desc.digest,
                compressed_size=desc.size,
                diff_id=desc.diff_id,
                toc_digest=toc.digest,
                compression=toc.compression,
                annotations=desc.annotations,
            )
            served = ServedLayer(
                ref=ref,
                digest=digest,
                convention=convention,
                descriptor=desc,
                toc=toc,
                info=info,
                diff=OverlayLayerView(LazyView(single, self.loop), toc),
                image_ref=image_ref,
            )
            with self._lock:
                self._layers[(ref, digest)] = served
            log.info(
                "serving %s layer %s (%s convention, %s)", ref, digest, convention.value, toc.format.value
            )
            return served

    # -- blocking API (FUSE threads) ------------------------------------------------------------
    def layer(self, ref: str, digest: str) -> ServedLayer:
        """The served layer, resolving it on first use; OSError(ENOENT) when it cannot be served."""
        with self._lock:
            found = self._layers.get((ref, digest))
        if found is not None:
            return found
        try:
            return self.loop.run(self._resolve_layer(ref, digest), timeout_s=self.options.resolve_timeout_s)
        except OSError:
            raise
        except (EmulatorError, FormatError, TimeoutError) as e:
            log.warning("cannot serve %s %s: %s", ref, digest, e)
            raise _absent(f"{ref} {digest}: {e}") from None

    def refs(self) -> list[str]:
        with self._lock:
            return sorted({r for r, _ in self._layers})

    def digests(self, ref: str) -> list[str]:
        with self._lock:
            return sorted(d for r, d in self._layers if r == ref)

    def use(self, ref: str, digest: str) -> int:
        layer = self.layer(ref, digest)
        with self._lock:
            layer.refcount += 1
            layer.uses += 1
            return layer.refcount

    def release(self, ref: str, digest: str) -> int:
        with self._lock:
            layer = self._layers.get((ref, digest))
            if layer is None:
                return 0
            layer.refcount = max(0, layer.refcount - 1)
            return layer.refcount

    def read_blob(self, layer: ServedLayer, offset: int, length: int) -> bytes:
        stop = min(layer.descriptor.size, offset + length)
        if offset >= stop:
            return b""
        wanted = ByteRange(offset, stop)

        async def _fetch() -> bytes:
            _, fetcher, _ = await self._setup()
            got, stats = await fetcher.fetch(layer.image_ref, layer.descriptor.digest, [wanted])
            self.counters.layer(layer.descriptor.digest).add_transfer(
                Purpose.ON_DEMAND, stats.body_bytes, stats.requests, stats.ranges
            )
            return got[wanted]

        try:
            data = self.loop.run(_fetch(), timeout_s=self.options.read_timeout_s)
        except (EmulatorError, TimeoutError) as e:
            raise OSError(errno.EIO, f"blob read failed: {e}") from None
        with self._lock:
            self.blob_bytes_read += len(data)
        return data

    def close(self) -> None:
        async def _close() -> None:
            if self._client is not None:
                await self._client.close()

        try:
            self.loop.run(_close(), timeout_s=30)
        finally:
            self.loop.stop()
            self.cache.flush()  # the disk cache complete before the store is gone
