"""The four pull modes, run for real on an `EmulatedNode`; each start yields a `StartupRecord`.

- full: download every layer (at most `pull.max_parallel_layers` at once, as containers/image),
  verify blob digests, decompress and extract in layer order into a root (diff_ids checked),
  then replay the trace from local disk.
- partial: containers/storage's partial pull (formats.md §2.4): TOCs, files and chunks reused
  from earlier pulls on the node by digest (re-hashed), the missing chunks fetched in one
  request per layer of at most `pull.partial_max_ranges` ranges (gaps <= merge gap always
  merged, then smallest gaps until it fits), files assembled and verified by digest, root
  materialized; layers without a TOC fall back to a full download, as c/image does.
- lazy: TOCs only, then run; reads fetch on demand; prefetch and background fetch start
  without being waited for.
- lazy-prefetch: as lazy, but the prefetch completes before the container counts as created.

Timestamps are seconds since `origin_s` (a `time.perf_counter()` value shared by a run).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from emulator.client import LayerDescriptor, ResolvedImage
from emulator.counters import POD_COUNTERS, Counters, Purpose
from emulator.errors import EmulatorError, VerificationError
from emulator.extract import (
    DownloadRestarted,
    GrowingFile,
    RootWriter,
    extract_layer_blob,
    extract_layer_stream,
)
from emulator.lazyview import open_store
from emulator.node import EmulatedNode
from emulator.prefetch import BackgroundFetcher, prefetch
from emulator.ranges import RangeFetcher, RangePolicy
from emulator.recorder import timed
from emulator.reference import ImageReference
from emulator.replay import ReplayResult, replay_async
from emulator.rootview import RootView
from emulator.store import Granularity, LazyStore, StoreOptions
from emulator.tocfetch import fetch_toc
from imageformat.detect import compression_of
from imageformat.digest import sha256_digest
from imageformat.errors import FormatError
from imageformat.layer import decode_chunk
from imageformat.toc import ChunkKind, EntryType, Toc
from startup.modes import PullMode
from startup.record import NAN, StartupRecord
from startup.scenario import PullSpec
from startup.trace import Trace


@dataclass(frozen=True, kw_only=True)
class StartSpec:
    mode: PullMode
    trace: Trace = field(default_factory=Trace)
    pull: PullSpec = field(default_factory=PullSpec)
    pod: str = "pod-0"
    scenario: str = "pull"
    seed: int = 0
    image: str = ""  # the record's image name (the scenario's); default: the reference


@dataclass(slots=True)
class _Progress:
    resolved_s: float = NAN
    pulled_s: float = NAN
    created_s: float = NAN
    ready_s: float = NAN
    bytes_manifest: int = 0
    bytes_layers: int = 0
    bytes_reused: int = 0
    requests: int = 0
    ranges: int = 0
    lazy: Counters = field(default_factory=Counters)
    replay: ReplayResult | None = None


def store_options(pull: PullSpec) -> StoreOptions:
    return StoreOptions(granularity=Granularity(pull.lazy_granularity), block_size_bytes=pull.block_bytes)


@dataclass(frozen=True, slots=True)
class StartResult:
    record: StartupRecord
    replay: ReplayResult | None  # None when the start failed before the workload ran


async def run_start(
    node: EmulatedNode, ref: ImageReference, spec: StartSpec, *, origin_s: float | None = None
) -> StartupRecord:
    """One container start on `node` in `spec.mode`; never raises for pull/read failures (the
    record's `error` says what failed), only for programming errors."""
    return (await run_start_detailed(node, ref, spec, origin_s=origin_s)).record


async def run_start_detailed(
    node: EmulatedNode, ref: ImageReference, spec: StartSpec, *, origin_s: float | None = None
) -> StartResult:
    """`run_start`, also returning the replay result (bytes read and their digest)."""
    origin = time.perf_counter() if origin_s is None else origin_s

    def now() -> float:
        return time.perf_counter() - origin

    submitted = now()
    p = _Progress()
    error = ""
    pod_counters = Counters()
    token = POD_COUNTERS.set(pod_counters)
    try:
        gate: contextlib.AbstractAsyncContextManager[Any] = node.pull_gate or contextlib.nullcontext()
        async with gate:  # kubelet --serialize-image-pulls: one pull phase at a time per node
            image = await node.client.resolve(ref)
            p.resolved_s, p.bytes_manifest, p.requests = now(), image.bytes_manifest, image.requests
            if spec.mode is PullMode.FULL:
                root = await _pull_full(node, ref, image, spec.pull, p)
            elif spec.mode is PullMode.PARTIAL:
                root = await _pull_partial(node, ref, image, spec.pull, p)
            else:
                store = await lazy_store_for(node, ref, image, spec.pull)
            p.pulled_s = now()
        if spec.mode in (PullMode.FULL, PullMode.PARTIAL):
            p.created_s = now()
            p.replay = await replay_async(RootView(root), spec.trace)
        else:
            await _run_lazy(node, store, spec, p, now)
        p.ready_s = now()
    except (EmulatorError, FormatError, OSError) as e:
        error = f"{type(e).__name__}: {e}"
    finally:
        POD_COUNTERS.reset(token)
    if spec.mode in (PullMode.LAZY, PullMode.LAZY_PREFETCH):
        p.lazy = pod_counters.copy()
    c = p.lazy
    record = StartupRecord(
        engine="emulator",
        scenario=spec.scenario,
        seed=spec.seed,
        node=node.name,
        pod=spec.pod,
        image=spec.image or str(ref),
        mode=spec.mode,
        submitted_s=submitted,
        resolved_s=p.resolved_s,
        pulled_s=p.pulled_s,
        created_s=p.created_s,
        ready_s=p.ready_s if not error else NAN,
        bytes_manifest=p.bytes_manifest,
        bytes_toc=c.bytes_toc,
        bytes_layers=p.bytes_layers,
        bytes_on_demand=c.bytes_on_demand,
        bytes_prefetch=c.bytes_prefetch,
        bytes_background=c.bytes_background,
        bytes_reused=p.bytes_reused,
        requests=p.requests + c.requests,
        ranges=p.ranges + c.ranges,
        cache_hits=c.cache_hits,
        cache_misses=c.cache_misses,
        fuse_ops=c.view_ops,  # operations the lazy store served (a FUSE op each, had it been mounted)
        fuse_cpu_s=c.view_cpu_s,  # CPU serving them in-process (no kernel crossing: a lower bound)
        error=error,
    )
    return StartResult(record, p.replay)


# -- lazy ---------------------------------------------------------------------------------------
async def lazy_store_for(
    node: EmulatedNode, ref: ImageReference, image: ResolvedImage, pull: PullSpec
) -> LazyStore:
    """The node's store for this image (opened once; later pods of the image share it)."""
    key = f"{ref.host}/{ref.repository}@{image.manifest_digest}"
    lock = node.store_locks.setdefault(key, asyncio.Lock())
    async with lock:
        store = node.stores.get(key)
        if store is None:
            store = await open_store(
                node.client,
                ref,
                cache=node.cache,
                options=store_options(pull),
                image=image,
                node_counters=node.counters,
            )
            node.stores[key] = store
            if pull.background_fetch:
                bg = BackgroundFetcher(
                    store,
                    concurrency=pull.background_concurrency,
                    request_bytes=pull.background_request_bytes,
                    resume_delay_s=pull.background_resume_delay_s,
                )
                node.background.append(bg)
                store._background = bg  # type: ignore[attr-defined]
    return store


async def _run_lazy(
    node: EmulatedNode, store: LazyStore, spec: StartSpec, p: _Progress, clock: Callable[[], float]
) -> None:
    bg: BackgroundFetcher | None = getattr(store, "_background", None)
    if spec.mode is PullMode.LAZY_PREFETCH:
        await prefetch(store, spec.pull.prefetch, spec.trace)
        p.created_s = clock()
    else:
        p.created_s = clock()
        node.spawn(_quiet(lambda: prefetch(store, spec.pull.prefetch, spec.trace)))
    if bg is not None and not bg._tasks:
        bg.start()
    p.replay = await replay_async(store, spec.trace)


async def _quiet(make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """A lazy-mode prefetch runs beside the container: its failure only means reads fetch on demand.
    (`make` is called here, so a task cancelled before it ran leaves no never-awaited coroutine.)"""
    with contextlib.suppress(EmulatorError, FormatError, OSError):
        await make()


# -- full ---------------------------------------------------------------------------------------
async def _download(
    node: EmulatedNode, ref: ImageReference, layer: LayerDescriptor, dest: Path, growing: GrowingFile
) -> int:
    """Stream the blob into `dest` (verified at the end), telling `growing` as bytes land."""
    try:
        with open(dest, "r+b", buffering=0) as fh:

            async def sink(data: bytes) -> None:
                fh.write(data)
                growing.wrote(len(data))

            async def restart() -> None:
                fh.seek(0)
                fh.truncate()
                growing.restart()

            with timed(node.recorder, "blob_get", layer=layer.digest) as t:
                t.nbytes = await node.client.stream_blob(ref, layer.digest, sink, restart=restart)
    except BaseException as e:
        growing.finish(error=f"{type(e).__name__}: {e}")
        raise
    growing.finish()
    return t.nbytes


async def _pull_full(
    node: EmulatedNode,
    ref: ImageReference,
    image: ResolvedImage,
    pull: PullSpec,
    p: _Progress,
    only: set[int] | None = None,
    writer: RootWriter | None = None,
) -> Path:
    """Downloads run ahead (at most max_parallel_layers at once); each layer is extracted, in
    order, while its bytes arrive; its digest and diff_id are checked before the pull counts."""
    root_writer = writer or RootWriter(node.new_root(f"full-{ref.repository}"))
    blobs = node.work_dir / "blobs"
    blobs.mkdir(exist_ok=True)
    sem = asyncio.Semaphore(pull.max_parallel_layers)
    indices = [i for i in range(len(image.layers)) if only is None or i in only]
    paths = {i: blobs / f"{image.layers[i].digest.split(':')[1]}.{id(root_writer)}.part" for i in indices}
    for path in paths.values():
        path.touch()
    growing = {i: GrowingFile(paths[i]) for i in indices}

    async def get(i: int) -> None:
        async with sem:
            p.bytes_layers += await _download(node, ref, image.layers[i], paths[i], growing[i])
            p.requests += 1

    tasks = {i: asyncio.create_task(get(i)) for i in indices}
    try:
        for i in indices:  # extraction is ordered: a layer applies on top of the ones below
            layer = image.layers[i]
            compression = compression_of(layer.media_type)
            with timed(node.recorder, "extract", layer=layer.digest) as t:
                try:
                    stream = cast(BinaryIO, growing[i])
                    diff_id, t.nbytes = await asyncio.to_thread(
                        extract_layer_stream, stream, compression, root_writer
                    )
                    await tasks[i]
                except DownloadRestarted:  # a retried download: extract again from the complete file
                    await tasks[i]
                    diff_id, t.nbytes = await asyncio.to_thread(
                        extract_layer_blob, paths[i], compression, root_writer
                    )
            if layer.diff_id and diff_id != layer.diff_id:
                raise VerificationError(
                    f"layer {layer.digest[:19]}: uncompressed digest {diff_id} != diff_id {layer.diff_id}"
                )
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for i in indices:
            growing[i].finish(error="pull abandoned")
            growing[i].close()
            paths[i].unlink(missing_ok=True)
    return root_writer.root


# -- partial ------------------------------------------------------------------------------------
async def _pull_partial(
    node: EmulatedNode, ref: ImageReference, image: ResolvedImage, pull: PullSpec, p: _Progress
) -> Path:
    policy = RangePolicy(
        max_ranges_per_request=pull.partial_max_ranges,
        merge_gap_bytes=pull.partial_merge_gap_bytes,
        merge_to_fit=True,
    )
    fetcher = RangeFetcher(node.client, policy)
    results = await asyncio.gather(*(fetch_toc(fetcher, ref, layer) for layer in image.layers))
    writer = RootWriter(node.new_root(f"partial-{ref.repository}"))
    tocs: list[Toc | None] = []
    for toc, stats in results:
        tocs.append(toc)
        p.lazy.add_transfer(Purpose.TOC, stats.body_bytes, stats.requests, stats.ranges)
    contents = await asyncio.gather(
        *(
            _layer_contents(node, ref, fetcher, image.layers[i], toc, p)
            for i, toc in enumerate(tocs)
            if toc is not None
        )
    )
    by_layer = dict(zip([i for i, t in enumerate(tocs) if t is not None], contents, strict=True))
    index: dict[str, tuple[str | None, list[tuple[str | None, int, int]]]] = {}
    for i, toc in enumerate(tocs):
        if toc is None:  # containers/image falls back to an ordinary download for this layer
            await _pull_full(node, ref, image, pull, p, only={i}, writer=writer)
            continue
        files = by_layer[i]
        writer.begin_layer()
        with timed(node.recorder, "extract", layer=image.layers[i].digest) as t:
            for e in toc.entries:
                data = files.get(e.path, b"") if e.type is EntryType.REG else b""
                writer.apply(
                    e.name,
                    e.type,
                    mode=e.mode,
                    uid=e.uid,
                    gid=e.gid,
                    mtime_s=e.mtime_ns / 1e9 if e.mtime_ns else None,
                    link_name=e.link_name,
                    dev=(e.dev_major, e.dev_minor),
                    write=_writer(data),
                )
                t.nbytes += len(data)
                if e.type is EntryType.REG and e.size:
                    index[e.path] = (e.digest, [(c.digest, c.file_offset, c.size) for c in e.chunks])
    node.index_root(writer.root, index)
    return writer.root


def _writer(data: bytes) -> Callable[[BinaryIO], None]:
    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return write


async def _layer_contents(
    node: EmulatedNode,
    ref: ImageReference,
    fetcher: RangeFetcher,
    layer: LayerDescriptor,
    toc: Toc,
    p: _Progress,
) -> dict[str, bytes]:
    """Every regular file's verified content: reused by file/chunk digest, else fetched."""
    files: dict[str, bytes] = {}
    pieces: dict[str, dict[int, bytes]] = {}
    missing = []
    for e in toc.regular_files():
        if not e.size:
            continue
        reused = node.index.lookup(e.digest, chunk=False)
        if reused is not None:
            files[e.path] = reused
            p.bytes_reused += len(reused)
            continue
        parts = pieces.setdefault(e.path, {})
        for c in e.chunks:
            if c.kind is ChunkKind.ZEROS:
                parts[c.file_offset] = bytes(c.size)
                continue
            local = node.index.lookup(c.digest, chunk=True) if len(e.chunks) > 1 else None
            if local is not None:
                parts[c.file_offset] = local
                p.bytes_reused += len(local)
            else:
                missing.append((e, c))
    if missing:
        got, stats = await fetcher.fetch(
            ref, layer.digest, [c.compressed for _, c in missing], layer=layer.digest
        )
        p.bytes_layers += stats.body_bytes
        p.requests += stats.requests
        p.ranges += stats.ranges
        with timed(node.recorder, "decode", layer=layer.digest) as t:
            for e, c in missing:
                pieces[e.path][c.file_offset] = decode_chunk(
                    toc.compression, got[c.compressed], c, verify=False
                )
                t.nbytes += c.size
    for e in toc.regular_files():
        if e.path in files or not e.size:
            continue
        data = b"".join(pieces[e.path][off] for off in sorted(pieces[e.path]))
        if len(data) != e.size or not e.digest or sha256_digest(data) != e.digest:
            raise VerificationError(f"{e.path}: assembled content does not match the TOC digest")
        files[e.path] = data
    return files


__all__ = ["StartResult", "StartSpec", "lazy_store_for", "run_start", "run_start_detailed", "store_options"]
