"""The lazy store on a node (stargz-store's role): mounting layers (TOC fetch), fetch units
on demand with de-duplication of in-flight fetches, the background fetcher with its pause while
on-demand fetches are in flight, and the prefetch set of lazy-prefetch.
"""

from __future__ import annotations

import numpy as np
import simpy

from sim.context import Proc, SimContext, count_runs, fetch
from sim.image import SimImage, SimLayer
from sim.node import DECODED, FETCHED, MISSING, LazyLayerState, PodState, SimNode
from sim.registry import RateLimitedError
from sim.workload import CompiledTrace
from startup.scenario import FirstBytesPrefetch, LandmarkPrefetch, NoPrefetch, TracePrefetch


def spend_cpu(node: SimNode, cpu_s: float) -> Proc:
    """`cpu_s` of work on one of the node's cores (queued behind the node's other CPU work), or
    processor-shared with every node's when the host is shared (cluster.host_cores)."""
    if cpu_s <= 0:
        return
    yield from node.compute(cpu_s)
    node.cpu_s += cpu_s


def fetch_toc(ctx: SimContext, node: SimNode, pod: PodState, layer: SimLayer) -> Proc:
    """Fetch the layer's TOC and parse it (`toc_parse_s_per_byte` per byte fetched, on a core)."""
    got = 0
    for nbytes, ranges in layer.toc_requests:
        got += yield from fetch(ctx, node, pod, nbytes, ranges, "bytes_toc")
    yield from spend_cpu(node, got * ctx.params.toc_parse_s_per_byte)


def mount_layer(ctx: SimContext, node: SimNode, pod: PodState, st: LazyLayerState) -> Proc:
    try:
        yield from fetch_toc(ctx, node, pod, st.layer)
    except BaseException:
        node.lazy_layers.pop(st.layer.digest, None)
        raise


def start_background(ctx: SimContext, node: SimNode, pod: PodState, image: SimImage) -> None:
    """Queue the background fetch of the image's mounted layers (once per layer and node).

    Called once the pod's prefetch has started (`lazy`) or finished (`lazy-prefetch`), as the
    emulator does: stargz-store's prefetch is a prioritized task the background fetch yields to,
    so background requests never take the prefetch's units first."""
    if not ctx.pull.background_fetch:
        return
    for layer in image.layers:
        st = node.lazy_layers.get(layer.digest)
        if st is None or layer.digest in node.local_layers or st.background_started:
            continue
        st.background_started = True
        schedule_background(ctx, node, st, st.owner or pod)


def schedule_background(ctx: SimContext, node: SimNode, st: LazyLayerState, owner: PodState) -> None:
    for u0, u1 in st.units.groups(ctx.pull.background_request_bytes):
        node.bg_queue.append((st, u0, u1, owner))
    if not node.bg_wake.triggered:
        node.bg_wake.succeed()
    if node.bg_epoch != node.epoch:  # rebooted: the old boot's workers are on their way out
        node.bg_epoch = node.epoch
        node.bg_workers = 0
    while node.bg_workers < node.background_concurrency:
        node.bg_workers += 1
        ctx.env.process(background_worker(ctx, node, node.epoch))


def background_worker(ctx: SimContext, node: SimNode, epoch: int) -> Proc:
    env = ctx.env
    while node.epoch == epoch:
        if not node.bg_queue:
            if node.bg_wake.triggered:
                node.bg_wake = env.event()
            yield node.bg_wake
            continue
        st, u0, u1, owner = node.bg_queue.popleft()
        delay = ctx.pull.background_resume_delay_s
        while True:  # the task manager pauses while on-demand fetches are in flight
            while node.ondemand > 0:
                yield node.idle
            if delay <= 0:
                break
            yield env.timeout(delay)
            if node.ondemand == 0:
                break
        if node.epoch != epoch:
            break
        missing = [u for u in range(u0, u1) if st.state[u] == MISSING and u not in st.inflight]
        if not missing:
            continue
        yield from _fetch_units(ctx, node, owner, st, missing, "bytes_background", swallow=True)
    if node.bg_epoch == epoch:  # a worker of an older boot no longer counts
        node.bg_workers -= 1


class InFlight:
    """A fetch in progress; its completion event exists only once somebody waits for it."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done: simpy.Event | None = None

    def waitable(self, env: simpy.Environment) -> simpy.Event:
        if self.done is None:
            self.done = env.event()
        return self.done


def _fetch_units(
    ctx: SimContext,
    node: SimNode,
    pod: PodState | None,
    st: LazyLayerState,
    units: list[int],
    counter: str,
    *,
    swallow: bool = False,
    max_ranges: int = 0,
) -> Proc:
    """Fetch `units` (sorted, none in flight) in one multi-range GET (or several of <= max_ranges)."""
    ev = InFlight()
    for u in units:
        st.inflight[u] = ev
    ok = verify = False
    try:
        runs = count_runs(units)
        lengths = st.units.lengths
        nbytes = sum([lengths[u] for u in units])
        if max_ranges and runs > max_ranges:
            requests = -(-runs // max_ranges)
            for i in range(requests):
                part = nbytes // requests + (nbytes % requests if i == 0 else 0)
                yield from fetch(ctx, node, pod, part, min(max_ranges, runs - i * max_ranges), counter)
        else:
            yield from fetch(ctx, node, pod, nbytes, runs, counter)
        p = ctx.params
        verify = p.lazy_verify_s_per_byte > 0 or p.lazy_verify_s_per_unit > 0
        if verify:  # the store decodes, hashes and caches every unit as it arrives
            decoded = nbytes * st.layer.expansion
            yield from spend_cpu(node, decoded * p.lazy_verify_s_per_byte
                                 + len(units) * p.lazy_verify_s_per_unit)
        ok = True
    except RateLimitedError:
        if not swallow:
            raise
    finally:
        for u in units:
            if st.inflight.get(u) is ev:
                del st.inflight[u]
                if ok and st.state[u] == MISSING:
                    st.state[u] = DECODED if verify else FETCHED
        if ev.done is not None:
            ev.done.succeed()


def ensure_units(
    ctx: SimContext,
    node: SimNode,
    pod: PodState,
    st: LazyLayerState,
    units: tuple[int, ...] | list[int],
    counter: str,
    max_ranges: int = 0,
) -> Proc:
    """Make `units` present: fetch the missing ones, wait for the ones in flight elsewhere."""
    while True:
        need = [u for u in units if st.state[u] == MISSING]
        if not need:
            return
        own = [u for u in need if u not in st.inflight]
        others = {id(f): f.waitable(ctx.env) for f in (st.inflight[u] for u in need if u in st.inflight)}
        node.begin_on_demand()
        try:
            if own:
                yield from _fetch_units(ctx, node, pod, st, own, counter, max_ranges=max_ranges)
            if others:
                yield ctx.env.all_of(list(others.values()))
        finally:
            node.end_on_demand()


def prefetch_units(ctx: SimContext, st: LazyLayerState, layer_index: int, trace: CompiledTrace) -> list[int]:
    spec = ctx.pull.prefetch
    u = st.units
    toc = st.layer.toc
    span = None
    if isinstance(spec, NoPrefetch):
        return []
    if isinstance(spec, FirstBytesPrefetch):
        span = (0, spec.bytes)
    elif isinstance(spec, LandmarkPrefetch) and toc is not None and toc.prefetch is not None:
        span = (toc.prefetch.start, toc.prefetch.stop)
    elif isinstance(spec, TracePrefetch) or (isinstance(spec, LandmarkPrefetch) and spec.fallback_to_trace):
        return sorted(trace.units_by_layer.get(layer_index, ()))
    if span is None or span[1] <= span[0]:
        return []
    lo = int(np.searchsorted(u.stops, span[0], side="right"))
    hi = int(np.searchsorted(u.starts, span[1], side="left"))
    return list(range(lo, hi))


def prefetch(ctx: SimContext, node: SimNode, pod: PodState, image: SimImage) -> Proc:
    trace = ctx.traces[image.name]
    procs = []
    for i, layer in enumerate(image.layers):
        st = node.lazy_layers.get(layer.digest)
        if st is None or layer.digest in node.local_layers:
            continue
        units = prefetch_units(ctx, st, i, trace)
        if units:
            procs.append(
                ctx.env.process(
                    ensure_units(
                        ctx, node, pod, st, units, "bytes_prefetch", max_ranges=ctx.pull.partial_max_ranges
                    )
                )
            )
    if procs:
        node.begin_on_demand()  # a prioritized task from its first instant: background waits
        try:
            yield ctx.env.all_of(procs)
        finally:
            node.end_on_demand()


# -- replay ----------------------------------------------------------------------------------------


def background_prefetch(ctx: SimContext, node: SimNode, pod: PodState, image: SimImage) -> Proc:
    """`lazy` mode: stargz-store prefetches every layer it mounts (formats spec §4.4), beside the
    container; a refused (429) prefetch just leaves the units to on-demand reads."""
    try:
        yield from prefetch(ctx, node, pod, image)
    except RateLimitedError:
        pass
