"""An emulated cluster: N nodes start pods on the scenario's schedule against one registry.

By default everything runs in one process and one event loop (`node_processes`: a process per
node, emulator/nodeprocs.py): each `EmulatedNode` has its own HTTP pool, cache, counters and
work directory; pods start at their arrival times (wall clock since the
run's origin) and each start yields a `StartupRecord`. The registry is any OCI registry at
`registry_host` (the `lazylab emulate` command starts a shaped `registry_mock` and passes its
address). What the scenario says about the link maps to registry_mock's shaping through
`link_parameters` (per-connection bandwidth = node downlink, registry egress, latency = RTT +
service time). `registry_timeline` turns the registry's access log into the registry's view:
bytes sent and concurrent transfers per time bin.

Images are assigned to pods round-robin (pod k runs image k mod len(images)); the workload is a
trace per image (`workload_traces`). kubelet's serialized image pulls are honoured per node
(`cluster.serialize_image_pulls`: one pull phase at a time on a node).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emulator.modes import StartSpec, run_start
from emulator.node import EmulatedNode
from emulator.recorder import Recorder
from emulator.reference import ImageReference
from startup.record import StartupRecord
from startup.scenario import (
    EmptyWorkload,
    LinearOverload,
    PerNodeArrivals,
    PoissonArrivals,
    RecordedArrivals,
    RolloutArrivals,
    Scenario,
    SyntheticWorkload,
    TableOverload,
    TraceWorkload,
)
from startup.trace import Trace
from startup.tracegen import synthetic_trace

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@dataclass(frozen=True, slots=True)
class PodArrival:
    at_s: float
    node: int
    pod: str
    image: str


def link_parameters(scenario: Scenario) -> dict[str, Any]:
    """registry_mock `LinkSpec` keyword arguments for the scenario's network and registry.

    Per-connection bandwidth = the node downlink; egress = the registry's; latency = RTT +
    service time; rate limit, concurrent-transfer cap and overload curve when the scenario has
    them (a linear overload becomes a curve sampled at the knee and where it reaches its floor).
    """
    reg = scenario.registry
    out: dict[str, Any] = {
        "bandwidth_bytes_per_s": scenario.cluster.link_bandwidth_bytes_per_s,
        "egress_bandwidth_bytes_per_s": reg.egress_bandwidth_bytes_per_s,
        "latency_s": scenario.cluster.rtt_s + reg.service_time_s,
    }
    if reg.rate_limit.requests_per_s > 0:
        out["rate_limit_per_s"] = reg.rate_limit.requests_per_s
        out["rate_burst"] = reg.rate_limit.burst
    if reg.max_concurrent_requests > 0:
        out["max_concurrent_transfers"] = reg.max_concurrent_requests
    ov = reg.overload
    if isinstance(ov, TableOverload):
        out["overload_curve"] = tuple(zip(ov.transfers, ov.efficiency, strict=True))
    elif isinstance(ov, LinearOverload):
        knee = max(1, ov.knee_transfers)
        floor_at = knee + max(1, math.ceil((1 - ov.min_efficiency) / max(ov.slope_per_transfer, 1e-12)))
        out["overload_curve"] = ((knee, 1.0), (floor_at, ov.min_efficiency))
    return out


def schedule(scenario: Scenario) -> list[PodArrival]:
    """Pod arrivals (time, node, image) from the scenario's arrival process, in time order."""
    n = scenario.cluster.nodes
    names = [img.name for img in scenario.images]
    joins = [scenario.cluster.join_at_s + i * scenario.cluster.join_interval_s for i in range(n)]
    a = scenario.arrivals
    times: list[tuple[float, int]] = []
    if isinstance(a, RolloutArrivals):
        times = [(a.at_s + k * a.stagger_s, k % n) for k in range(a.replicas)]
    elif isinstance(a, PoissonArrivals):
        rng = np.random.default_rng(np.random.SeedSequence(scenario.seed).spawn(1)[0])
        t = a.at_s
        for k in range(a.pods):
            t += float(rng.exponential(1.0 / a.rate_per_s))
            times.append((t, k % n))
    elif isinstance(a, RecordedArrivals):
        times = [(t, k % n) for k, t in enumerate(sorted(a.times_s))]
    elif isinstance(a, PerNodeArrivals):
        times = [(joins[i], i) for i in range(n) for _ in range(a.pods_per_node)]
    else:
        raise TypeError(f"unknown arrivals {a!r}")
    out = [
        PodArrival(max(t, joins[node]), node, f"pod-{k:05d}", names[k % len(names)])
        for k, (t, node) in enumerate(times)
    ]
    return sorted(out, key=lambda p: (p.at_s, p.pod))


def workload_traces(
    scenario: Scenario, image_files: Mapping[str, Sequence[tuple[str, int]]]
) -> dict[str, Trace]:
    """The trace each image's pods replay; `image_files` = image name -> its (path, size) files."""
    w = scenario.workload
    if isinstance(w, EmptyWorkload):
        return {name: Trace(name="empty", image=name) for name in image_files}
    if isinstance(w, TraceWorkload):
        trace = Trace.load(scenario.resolve_path(w.path))
        return {name: trace for name in image_files}
    if isinstance(w, SyntheticWorkload):
        seeds = np.random.SeedSequence(scenario.seed).spawn(len(image_files) + 1)[1:]
        return {
            name: synthetic_trace(list(files), w, seeds[i], name=f"synthetic-{name}", image=name)
            for i, (name, files) in enumerate(sorted(image_files.items()))
        }
    raise TypeError(f"unknown workload {w!r}")


@dataclass(frozen=True)
class ClusterResult:
    records: list[StartupRecord]  # in completion order
    origin_epoch_s: float  # time.time() at the run's origin (t = 0 of every record)
    wall_s: float
    # node -> CPU seconds its process spent from the origin to its last pod (time.process_time()):
    # known where a node has a process of its own, or is the only one; empty otherwise
    node_cpu_s: dict[str, float] = field(default_factory=dict)


def node_name(i: int) -> str:
    return f"node-{i:03d}"


async def run_cluster(
    scenario: Scenario,
    refs: Mapping[str, ImageReference],
    traces: Mapping[str, Trace],
    work_dir: Path,
    *,
    recorder: Recorder | None = None,
    disk_cache: bool = True,
    node_processes: bool = False,
    loop_factory: LoopFactory | None = None,
) -> ClusterResult:
    """Start every pod of the schedule on its node; the records come in completion order.

    `node_processes`: each node runs in a process of its own (emulator/nodeprocs.py; no
    `recorder` then), on loops made by `loop_factory` (default: asyncio's)."""
    if node_processes and scenario.cluster.nodes > 1:
        if recorder is not None:
            raise ValueError("a recorder cannot follow nodes into their own processes")
        from emulator.nodeprocs import run_node_processes

        return await run_node_processes(scenario, refs, traces, work_dir, disk_cache=disk_cache,
                                        loop_factory=loop_factory)
    origin, origin_epoch, cpu0 = time.perf_counter(), time.time(), time.process_time()
    records = await run_nodes(scenario, refs, traces, work_dir, range(scenario.cluster.nodes), origin,
                              recorder=recorder, disk_cache=disk_cache)
    wall, cpu = time.perf_counter() - origin, time.process_time() - cpu0
    return ClusterResult(records, origin_epoch, wall,
                         {node_name(0): cpu} if scenario.cluster.nodes == 1 else {})


async def run_nodes(
    scenario: Scenario,
    refs: Mapping[str, ImageReference],
    traces: Mapping[str, Trace],
    work_dir: Path,
    node_ids: Iterable[int],
    origin: float,
    *,
    recorder: Recorder | None = None,
    disk_cache: bool = True,
) -> list[StartupRecord]:
    """The schedule's pods on these nodes, timed from `origin` (a time.perf_counter() value)."""
    nodes = {
        i: EmulatedNode(node_name(i), work_dir / node_name(i), recorder=recorder, disk_cache=disk_cache)
        for i in node_ids
    }
    for node in nodes.values():
        if scenario.cluster.serialize_image_pulls:
            node.pull_gate = asyncio.Semaphore(1)
        elif scenario.cluster.max_parallel_image_pulls:
            node.pull_gate = asyncio.Semaphore(scenario.cluster.max_parallel_image_pulls)
    records: list[StartupRecord] = []

    async def start(p: PodArrival) -> None:
        delay = p.at_s - (time.perf_counter() - origin)
        if delay > 0:
            await asyncio.sleep(delay)
        spec = StartSpec(
            mode=scenario.mode,
            trace=traces[p.image],
            pull=scenario.pull,
            pod=p.pod,
            image=p.image,
            scenario=scenario.name,
            seed=scenario.seed,
        )
        records.append(await run_start(nodes[p.node], refs[p.image], spec, origin_s=origin))

    try:
        await asyncio.gather(*(start(p) for p in schedule(scenario) if p.node in nodes))
    finally:
        for node in nodes.values():
            await node.close()
    return records


def image_files(layout_dir: Path, tag: str | None) -> list[tuple[str, int]]:
    """Regular files (path, size) of an image in an OCI layout, upper layers winning (no network)."""
    import tarfile

    from imageformat.detect import compression_of
    from imageformat.oci import OciLayout
    from imageformat.plain import DecompressedReader
    from imageformat.toc import normalize_path

    layout = OciLayout.open(layout_dir)
    files: dict[str, int] = {}
    for desc in layout.resolve(tag).layers:
        with (
            layout.open_blob(desc) as blob,
            tarfile.open(
                fileobj=DecompressedReader(compression_of(desc.media_type), blob),
                mode="r|",  # type: ignore[arg-type]
            ) as tf,
        ):
            for ti in tf:
                path = normalize_path(ti.name)
                base = path.rsplit("/", 1)[-1]
                if base.startswith(".wh."):
                    files.pop(path[: -len(base)] + base[4:], None)
                elif ti.isreg() and base not in (
                    ".prefetch.landmark",
                    ".no.prefetch.landmark",
                    "stargz.index.json",
                ):
                    files[path] = ti.size
                else:
                    files.pop(path, None)
    return sorted(files.items())


def registry_timeline(
    access_log: Sequence[Mapping[str, Any]], *, origin_epoch_s: float, bin_s: float = 0.1
) -> list[dict[str, float]]:
    """Per time bin (since `origin_epoch_s`): bytes the registry sent and transfers in flight.

    A request's bytes are spread evenly over [end - duration, end]; a transfer is a request
    that sent bytes; `concurrent_transfers` is their time-average number in the bin.
    """
    if bin_s <= 0:
        raise ValueError(f"bin_s (={bin_s}) must be > 0")
    spans = []
    for r in access_log:
        end = float(r.get("ts", 0.0)) - origin_epoch_s
        dur = max(float(r.get("duration_s", 0.0)), 1e-9)
        spans.append((end - dur, end, int(r.get("bytes_sent", 0) or 0)))
    if not spans:
        return []
    last = max(e for _, e, _ in spans)
    bins = max(1, math.ceil(max(last, 0.0) / bin_s))
    sent = [0.0] * bins
    busy = [0.0] * bins
    for s, e, n in spans:
        for b in range(max(0, int(s // bin_s)), min(bins, int(e // bin_s) + 1)):
            lo, hi = max(s, b * bin_s), min(e, (b + 1) * bin_s)
            if hi <= lo:
                continue
            frac = (hi - lo) / (e - s)
            sent[b] += n * frac
            if n > 0:
                busy[b] += (hi - lo) / bin_s
    return [
        {"t_s": round(b * bin_s, 6), "bytes_sent": round(sent[b]), "concurrent_transfers": round(busy[b], 4)}
        for b in range(bins)
    ]
