"""Pull strategies and trace replay — the four modes as SimPy processes over one node.

full: resolve, download missing layers (<= `max_parallel_layers` at once), decompress and
  extract each in layer order on a core; replay the trace from local disk.
partial: resolve, per layer the TOC, reuse of files/chunks already on the node by digest,
  the missing chunks in ONE GET of at most `partial_max_ranges` ranges (gaps <= 1024 B
  merged, then the smallest gaps until the cap holds), decode + write on a core.
lazy: resolve, every layer's TOC in parallel (mount), create; each read fetches the missing
  fetch units on demand (one multi-range GET of the contiguous runs), waits for units another
  reader is fetching, pays FUSE per op and per byte and decode on first use; background fetch.
lazy-prefetch: lazy + the prefetch set fetched before the container counts as created.
Layers without a TOC fall back to a full download in every mode (as c/storage does).
"""

from __future__ import annotations

import numpy as np
import simpy

from sim.context import PodEvicted, Proc, SimContext, fetch
from sim.image import SimImage, SimLayer
from sim.lazy import (
    background_prefetch,
    ensure_units,
    fetch_toc,
    mount_layer,
    prefetch,
    spend_cpu,
    start_background,
)
from sim.node import DECODED, FETCHED, MISSING, LazyLayerState, PodState, SimNode
from sim.registry import RateLimitedError
from startup.modes import PullMode

__all__ = ["PULLS", "SimContext", "merge_missing", "pod_process", "run_trace"]


def merge_missing(starts: np.ndarray, stops: np.ndarray, max_gap: int, max_ranges: int) -> tuple[int, int]:
    """c/storage `mergeMissingChunks`: (bytes requested, ranges) after merging (formats spec §2.4)."""
    if len(starts) == 0:
        return 0, 0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], stops[order]
    gaps = s[1:] - np.maximum.accumulate(e)[:-1]
    gaps = np.maximum(gaps, 0)
    keep = gaps > max_gap  # a gap that survives separates two ranges
    nranges = int(keep.sum()) + 1
    total = int(np.maximum.accumulate(e)[-1] - s[0]) - int(gaps[keep].sum())
    if nranges > max_ranges:
        extra = np.sort(gaps[keep])[: nranges - max_ranges]
        total += int(extra.sum())
        nranges = max_ranges
    return total, nranges


EXTRACT_SLICES = 8  # a full pull's extraction follows its download in this many steps


def full_layer(
    ctx: SimContext,
    node: SimNode,
    pod: PodState,
    layer: SimLayer,
    slots: simpy.Resource,
    prev: simpy.Event | None,
) -> Proc:
    """Download one blob and extract it; returns when the layer was applied (env time).

    containers/image extracts a layer while its bytes arrive (so does the emulator): extraction
    starts with the download, or when the layer below is applied, and the layer is applied when
    both its last byte arrived and its extraction CPU has been spent. The CPU is spent in
    `EXTRACT_SLICES` slices on a core, each once its share of the blob can have arrived (at the
    link's rate), so nodes sharing a host's cores (`cluster.host_cores`) contend for them while
    they download, and hold none while they wait for bytes."""
    env = ctx.env
    cpu = (
        layer.uncompressed_bytes / ctx.decode_rate(layer)
        + layer.uncompressed_bytes / ctx.params.extract_bytes_per_s
    )
    extraction: simpy.Process | None = None
    try:
        with slots.request() as req:
            yield req
            arrival_s = layer.blob_size / node.link.capacity  # the earliest the last byte can land
            extraction = env.process(_extraction_cpu(ctx, node, cpu, prev, arrival_s))
            yield from fetch(ctx, node, pod, layer.blob_size, 1, "bytes_layers")
        failed_below = yield extraction
        if failed_below is not None:
            raise failed_below
        node.cpu_s += cpu
    except BaseException:
        if extraction is not None and extraction.is_alive:
            extraction.interrupt("download failed")
        node.local_layers.pop(layer.digest, None)
        raise
    return float(env.now)


def _extraction_cpu(
    ctx: SimContext, node: SimNode, cpu_s: float, below: simpy.Event | None, arrival_s: float
) -> Proc:
    """A layer's extraction, after the layer below is applied: slice i of `EXTRACT_SLICES` takes
    a core once (i + 1) / EXTRACT_SLICES of the blob can have arrived. Returns the exception the
    layer below failed with (the caller raises it) rather than failing unobserved."""
    env = ctx.env
    started = env.now
    try:
        if below is not None:
            try:
                yield below
            except BaseException as e:  # handed to the caller
                return e
        for i in range(EXTRACT_SLICES):
            bytes_there_at = started + arrival_s * (i + 1) / EXTRACT_SLICES
            if bytes_there_at > env.now:
                yield env.timeout(bytes_there_at - env.now)
            yield from node.compute(cpu_s / EXTRACT_SLICES)
    except simpy.Interrupt:
        pass
    return None


def pull_full(ctx: SimContext, node: SimNode, pod: PodState, image: SimImage) -> Proc:
    slots = simpy.Resource(ctx.env, capacity=ctx.pull.max_parallel_layers)
    waits: list[simpy.Event] = []
    prev: simpy.Event | None = None
    for layer in image.layers:
        ev = node.local_layers.get(layer.digest)
        if ev is None:
            ev = ctx.env.process(full_layer(ctx, node, pod, layer, slots, prev))
            node.local_layers[layer.digest] = ev
        waits.append(ev)
        prev = ev
    yield ctx.env.all_of(waits)


# -- partial ---------------------------------------------------------------------------------------
def partial_layer(
    ctx: SimContext, node: SimNode, pod: PodState, layer: SimLayer, slots: simpy.Resource
) -> Proc:
    try:
        with slots.request() as req:
            yield req
            yield from fetch_toc(ctx, node, pod, layer)
            data = ~layer.chunk_zero
            clen = layer.chunk_cstop - layer.chunk_cstart
            if node.file_digests or node.chunk_digests:
                need = data.copy()
                for f in layer.files.values():
                    if f.digest in node.file_digests:
                        need[f.k0 : f.k1] = False
                    else:
                        for k in range(f.k0, f.k1):
                            d = layer.chunk_digest[k]
                            if need[k] and d is not None and d in node.chunk_digests:
                                need[k] = False
            else:
                need = data
            pod.bytes_reused += int(clen[data & ~need].sum())
            nbytes, nranges = merge_missing(
                layer.chunk_cstart[need],
                layer.chunk_cstop[need],
                ctx.pull.partial_merge_gap_bytes,
                ctx.pull.partial_max_ranges,
            )
            if nbytes:
                yield from fetch(ctx, node, pod, nbytes, nranges, "bytes_layers")
        decoded = int(layer.chunk_size[need].sum())
        cpu = decoded / ctx.decode_rate(layer) + layer.file_bytes / ctx.params.extract_bytes_per_s
        yield from spend_cpu(node, cpu)
        node.partial_layers.add(layer.digest)
        node.file_digests.update(f.digest for f in layer.files.values())
        node.chunk_digests.update(d for d in layer.chunk_digest if d is not None)
    except BaseException:
        node.local_layers.pop(layer.digest, None)
        raise


def pull_partial(ctx: SimContext, node: SimNode, pod: PodState, image: SimImage) -> Proc:
    slots = simpy.Resource(ctx.env, capacity=ctx.pull.max_parallel_layers)
    waits: list[simpy.Event] = []
    for layer in image.layers:
        ev = node.local_layers.get(layer.digest)
        if ev is None:
            body = (
                partial_layer(ctx, node, pod, layer, slots)
                if layer.lazy
                else full_layer(ctx, node, pod, layer, slots, None)
            )
            ev = ctx.env.process(body)
            node.local_layers[layer.digest] = ev
        waits.append(ev)
    yield ctx.env.all_of(waits)


def pull_lazy(ctx: SimContext, node: SimNode, pod: PodState, image: SimImage) -> Proc:
    slots = simpy.Resource(ctx.env, capacity=ctx.pull.max_parallel_layers)
    waits: list[simpy.Event] = []
    for layer in image.layers:
        ev = node.local_layers.get(layer.digest)
        if ev is None and not layer.lazy:
            ev = ctx.env.process(full_layer(ctx, node, pod, layer, slots, None))
            node.local_layers[layer.digest] = ev
        if ev is not None:
            waits.append(ev)
            continue
        st, created = node.lazy_state(layer, ctx.pull.lazy_granularity, ctx.pull.block_bytes)
        if created:
            st.owner = pod
            st.toc_ready = ctx.env.process(mount_layer(ctx, node, pod, st))
        waits.append(st.toc_ready)
    yield ctx.env.all_of(waits)


def run_trace(ctx: SimContext, node: SimNode, pod: PodState, image: SimImage, epoch: int) -> Proc:
    env, p = ctx.env, ctx.params
    trace = ctx.traces[image.name]
    states: list[LazyLayerState | None] = [
        None if layer.digest in node.local_layers else node.lazy_layers.get(layer.digest)
        for layer in image.layers
    ]
    if all(s is None for s in states):
        if trace.local_cost_s > 0:
            yield env.timeout(trace.local_cost_s)
        return
    # per-operation costs are a delay on a node of its own; on a shared host (cluster.host_cores)
    # they are the node's CPU, shared with its background verification and the other nodes
    on_host = node.host is not None
    pending = 0.0  # think time (and op costs off-host) not yet waited
    pending_cpu = 0.0  # op costs on a shared host not yet spent

    def settle() -> Proc:
        nonlocal pending, pending_cpu
        if pending > 0:
            yield env.timeout(pending)
        if pending_cpu > 0:
            yield from node.compute(pending_cpu)
        pending = pending_cpu = 0.0

    def cost(seconds: float) -> None:
        nonlocal pending, pending_cpu
        if on_host:
            pending_cpu += seconds
        else:
            pending += seconds

    fuse_cpu = 0.0
    for step in trace.steps:
        pending += step.think_s
        if not ctx.coalesce and (pending > 0 or pending_cpu > 0):
            yield from settle()
        if step.layer < 0:  # metadata: what a local operation costs plus one FUSE round trip
            cost(p.local_op_s + p.fuse_op_s)
            fuse_cpu += p.fuse_op_s
            pod.fuse_ops += 1
            continue
        st = states[step.layer]
        local_s = p.local_op_s + step.length / p.local_read_bytes_per_s  # the read from a local rootfs
        if st is None:
            cost(local_s)
            continue
        state = st.state
        # only reads of units already decoded are coalesced; anything else (a fetch, a wait, a
        # first decode) happens at the read's true start time, so coalescing changes nothing
        if step.units and any(state[u] != DECODED for u in step.units):
            if pending > 0 or pending_cpu > 0:
                yield from settle()
                if node.epoch != epoch:
                    raise PodEvicted("evicted: node drained")
            if any(state[u] == MISSING for u in step.units):
                pod.cache_misses += 1
                yield from ensure_units(ctx, node, pod, st, step.units, "bytes_on_demand")
                if node.epoch != epoch:
                    raise PodEvicted("evicted: node drained")
            else:
                pod.cache_hits += 1
        elif step.units:
            pod.cache_hits += 1
        decode = 0.0
        for u in step.units:
            if state[u] == FETCHED:
                state[u] = DECODED
                decode += st.units.lengths[u] * st.layer.expansion / ctx.decode_rate(st.layer)
        # the calibrated FUSE costs are the extra over an in-process read of the same bytes
        fuse_cost = p.fuse_op_s + step.length * p.fuse_byte_s
        fuse_cpu += fuse_cost
        node.cpu_s += decode
        cost(local_s + fuse_cost + decode)
        pod.fuse_ops += 1
    pod.fuse_cpu_s += fuse_cpu
    node.fuse_cpu_s += fuse_cpu
    yield from settle()


PULLS = {
    PullMode.FULL: pull_full,
    PullMode.PARTIAL: pull_partial,
    PullMode.LAZY: pull_lazy,
    PullMode.LAZY_PREFETCH: pull_lazy,
}


def resolve(ctx: SimContext, node: SimNode, pod: PodState, image: SimImage) -> Proc:
    yield from fetch(ctx, node, pod, image.manifest_bytes, 1, "bytes_manifest")
    yield from fetch(ctx, node, pod, image.config_bytes, 1, "bytes_manifest")


def pod_process(ctx: SimContext, node: SimNode, pod: PodState) -> Proc:
    env = ctx.env
    image = ctx.images[pod.image]
    try:
        if pod.submitted_s > env.now:
            yield env.timeout(pod.submitted_s - env.now)
        epoch = node.epoch
        if pod.image in node.present:  # imagePullPolicy IfNotPresent: no registry contact
            pod.resolved_s = pod.pulled_s = env.now
        else:
            lock = node.pull_lock.request() if node.pull_lock is not None else None
            if lock is not None:
                yield lock
            try:
                yield from resolve(ctx, node, pod, image)
                pod.resolved_s = env.now
                yield from PULLS[pod.mode](ctx, node, pod, image)
            finally:
                if lock is not None and node.pull_lock is not None:
                    node.pull_lock.release(lock)
            node.present[pod.image] = pod.mode
            pod.pulled_s = env.now
        if pod.mode is PullMode.LAZY_PREFETCH:
            yield from prefetch(ctx, node, pod, image)
            start_background(ctx, node, pod, image)
        elif pod.mode is PullMode.LAZY:  # stargz-store prefetches every mounted layer; nobody waits
            env.process(background_prefetch(ctx, node, pod, image))
            start_background(ctx, node, pod, image)
        yield env.timeout(ctx.params.create_s)
        pod.created_s = env.now
        if node.epoch != epoch:
            raise PodEvicted("evicted: node drained")
        yield from run_trace(ctx, node, pod, image, epoch)
        if node.epoch != epoch:
            raise PodEvicted("evicted: node drained")
        pod.ready_s = env.now
    except (RateLimitedError, PodEvicted) as e:
        pod.error = str(e)
