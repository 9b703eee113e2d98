"""Building a simulated world from a `Scenario`: images, traces, registries, nodes, pods.

Arrivals become pods assigned to nodes (round-robin for rollout/poisson/recorded; `per-node`
gives each node its pods when it joins). Pod k runs image k mod (number of images). A pod on a
node that has not joined yet is submitted when the node joins (scale-out). Node i pulls from
endpoint i mod (1 + mirrors). With `sim.cohorts`, nodes with the same endpoint and the same pod
schedule are simulated once with multiplicity (exact: identical inputs give identical
trajectories; disabled automatically where it would not be exact — rate limits, request
concurrency limits, the machine-config-pool toggle). The toggle process drains and reboots nodes
`max_unavailable` at a time, wipes lazily pulled images at boot, and restarts the node's pods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from nodeconfig.markers import pool_toggle_markers
from sim.host import SharedHost
from sim.image import ImageError, SimImage, SimLayer, oci_image, synthetic_image
from sim.network import Network
from sim.node import PodState, SimNode
from sim.params import CalibratedParams
from sim.registry import Registry
from sim.strategies import SimContext, pod_process
from sim.workload import build_trace, compile_trace
from startup.modes import PullMode
from startup.scenario import (
    OciImageSpec,
    PerNodeArrivals,
    PoissonArrivals,
    RecordedArrivals,
    RolloutArrivals,
    Scenario,
    SyntheticImageSpec,
    SyntheticLayerSpec,
    ToggleSpec,
)
from startup.tracegen import image_trace_seeds


@dataclass
class World:
    env: simpy.Environment
    ctx: SimContext
    net: Network
    registries: list[Registry]
    nodes: list[SimNode]
    pods: list[tuple[SimNode, PodState]]
    total_pods: int  # counting cohort members
    notes: list[str] = field(default_factory=list)


def build_images(scenario: Scenario) -> dict[str, SimImage]:
    all_layers: dict[str, SyntheticLayerSpec] = {}
    for spec in scenario.images:
        if isinstance(spec, SyntheticImageSpec):
            for layer in spec.layers:
                all_layers[layer.name] = layer
    cache: dict[str, SimLayer] = {}
    images: dict[str, SimImage] = {}
    reg = scenario.registry
    for spec in scenario.images:
        if isinstance(spec, SyntheticImageSpec):
            images[spec.name] = synthetic_image(
                spec,
                scenario.seed,
                all_layers,
                cache,
                manifest_bytes=reg.manifest_bytes,
                config_bytes=reg.config_bytes,
            )
        elif isinstance(spec, OciImageSpec):
            images[spec.name] = oci_image(spec.name, scenario.resolve_path(spec.layout), spec.tag, cache)
        else:
            raise ImageError(f"unknown image source {spec!r}")
    return images


def arrival_times(
    scenario: Scenario, rng: np.random.Generator, join_s: list[float]
) -> list[tuple[float, int]]:
    """(arrival time, node index) per pod, in pod order."""
    a = scenario.arrivals
    n = scenario.cluster.nodes
    if isinstance(a, RolloutArrivals):
        return [(a.at_s + k * a.stagger_s, k % n) for k in range(a.replicas)]
    if isinstance(a, PoissonArrivals):
        out: list[tuple[float, int]] = []
        t = a.at_s
        for k in range(a.pods):  # one draw at a time, summed in order: the emulator's schedule exactly
            t += float(rng.exponential(1.0 / a.rate_per_s))
            out.append((t, k % n))
        return out
    if isinstance(a, RecordedArrivals):
        return [(t, k % n) for k, t in enumerate(sorted(a.times_s))]
    if isinstance(a, PerNodeArrivals):
        return [(join_s[i], i) for i in range(n) for _ in range(a.pods_per_node)]
    raise TypeError(f"unknown arrivals {a!r}")


def cohorts_allowed(scenario: Scenario) -> tuple[bool, str]:
    if not scenario.sim.cohorts:
        return False, "cohorts off (sim.cohorts = false)"
    if scenario.registry.rate_limit.requests_per_s > 0:
        return False, "cohorts off: a rate limit admits requests one by one"
    if scenario.registry.max_concurrent_requests > 0:
        return False, "cohorts off: a request concurrency limit queues requests one by one"
    if scenario.toggle is not None:
        return False, "cohorts off: the toggle reboots nodes one batch at a time"
    if scenario.cluster.host_cores > 0:
        return False, "cohorts off: the nodes share one host's cores (cluster.host_cores)"
    return True, ""


def build_world(
    scenario: Scenario, params: CalibratedParams, on_pod_done: Callable[[int], None] | None = None
) -> World:
    env = simpy.Environment()
    ss = np.random.SeedSequence(scenario.seed)
    (seed_arrivals,) = ss.spawn(1)  # child 0: arrivals; children 1..n: image traces (sorted names)
    images = build_images(scenario)
    pull = scenario.pull
    trace_seeds = image_trace_seeds(scenario.seed, images)
    traces = {}
    for spec in scenario.images:
        sim_image = images[spec.name]
        trace = build_trace(scenario.workload, sim_image, trace_seeds[spec.name], scenario.resolve_path)
        traces[spec.name] = compile_trace(trace, sim_image, params, pull.lazy_granularity, pull.block_bytes)
    ctx = SimContext(env=env, params=params, pull=pull, images=images, traces=traces)

    net = Network(env)
    reg = scenario.registry
    # a shared emulation host: its cores processor-shared by every node's CPU work, including
    # each request's client and registry processing (testbed model, docs/model.md)
    host_cores = scenario.cluster.host_cores
    host = SharedHost(env, host_cores) if host_cores > 0 else None
    registries = [
        Registry(
            env,
            net,
            name="registry",
            egress_bytes_per_s=reg.egress_bandwidth_bytes_per_s,
            service_time_s=reg.service_time_s,
            max_concurrent=reg.max_concurrent_requests,
            overload=reg.overload,
            rate_limit=reg.rate_limit,
            request_overhead_s=params.request_overhead_s,
            overhead_is_cpu=host is not None,
        )
    ]
    rtts = [scenario.cluster.rtt_s]
    for m in reg.mirrors:
        registries.append(
            Registry(
                env,
                net,
                name=m.name,
                egress_bytes_per_s=m.egress_bandwidth_bytes_per_s,
                service_time_s=m.service_time_s,
                max_concurrent=reg.max_concurrent_requests,
                overload=reg.overload,
                rate_limit=reg.rate_limit,
                request_overhead_s=params.request_overhead_s,
            )
        )
        rtts.append(m.rtt_s if m.rtt_s >= 0 else scenario.cluster.rtt_s)

    cl = scenario.cluster
    join_s = [cl.join_at_s + i * cl.join_interval_s for i in range(cl.nodes)]
    arrivals = arrival_times(scenario, np.random.default_rng(seed_arrivals), join_s)
    image_names = [s.name for s in scenario.images]
    per_node: dict[int, list[tuple[float, str, str]]] = {}
    for k, (t, i) in enumerate(arrivals):
        per_node.setdefault(i, []).append(
            (max(t, join_s[i]), image_names[k % len(image_names)], f"pod-{k:05d}")
        )

    use_cohorts, note = cohorts_allowed(scenario)
    groups: dict[Any, list[int]] = {}
    for i in sorted(per_node):
        endpoint = i % len(registries)
        key: Any = (endpoint, tuple((t, img) for t, img, _ in per_node[i])) if use_cohorts else i
        groups.setdefault(key, []).append(i)

    pull_slots = 1 if cl.serialize_image_pulls else cl.max_parallel_image_pulls
    nodes: list[SimNode] = []
    pods: list[tuple[SimNode, PodState]] = []
    total = sum(len(v) for v in per_node.values())
    for members in groups.values():
        i0 = members[0]
        endpoint = i0 % len(registries)
        names = [f"node-{i:03d}" for i in members]
        link = net.link(
            names[0],
            cl.link_bandwidth_bytes_per_s * params.bandwidth_efficiency,
            registries[endpoint].endpoint,
            weight=len(members),
        )
        node = SimNode(
            env,
            index=i0,
            members=names,
            link=link,
            registry=registries[endpoint],
            rtt_s=rtts[endpoint],
            cores=host if host is not None else cl.cores,
            pull_slots=pull_slots,
            background_concurrency=pull.background_concurrency,
        )
        nodes.append(node)
        for j, (t, img, _) in enumerate(per_node[i0]):
            pod = PodState(
                pod=per_node[i0][j][2],
                image=img,
                mode=scenario.mode,
                submitted_s=t,
                pod_names=[per_node[i][j][2] for i in members],
            )
            node.pods.append(pod)
            pods.append((node, pod))
            env.process(_tracked(ctx, node, pod, on_pod_done))
    world = World(env, ctx, net, registries, nodes, pods, total, [note] if note else [])
    if scenario.toggle is not None:
        env.process(toggle_process(world, scenario.toggle, on_pod_done, from_mode=scenario.mode))
    return world


def _tracked(ctx: SimContext, node: SimNode, pod: PodState, on_pod_done: Callable[[int], None] | None) -> Any:
    yield from pod_process(ctx, node, pod)
    if on_pod_done is not None:
        on_pod_done(node.weight)


def toggle_process(
    world: World, spec: ToggleSpec, on_pod_done: Callable[[int], None] | None, *, from_mode: PullMode
) -> Any:
    """The pool rolls from `from_mode` to `spec.to_mode`; at boot each node runs check-layer-state
    with the markers the two configurations imply (`nodeconfig.markers.pool_toggle_markers`)."""
    env = world.env
    before, after = pool_toggle_markers(PullMode(from_mode).value, PullMode(spec.to_mode).value)
    for node in world.nodes:
        node.layer_state = before  # the state file the nodes booted with
    if spec.at_s > env.now:
        yield env.timeout(spec.at_s)
    order = sorted(world.nodes, key=lambda n: n.index)
    for b in range(0, len(order), spec.max_unavailable):
        batch = order[b : b + spec.max_unavailable]
        yield env.timeout(spec.drain_s)
        for node in batch:
            node.epoch += 1  # drained: running starts are evicted, background work stops
            node.bg_queue.clear()
        yield env.timeout(spec.reboot_s)
        for node in batch:
            node.wipe_lazy(node.layer_state, after)
            restarted = [p for p in node.pods if not p.pod.endswith("-r")]
            for old in restarted:
                pod = PodState(
                    pod=old.pod + "-r",
                    image=old.image,
                    mode=PullMode(spec.to_mode),
                    submitted_s=env.now,
                    pod_names=[n + "-r" for n in old.pod_names],
                )
                node.pods.append(pod)
                world.pods.append((node, pod))
                world.total_pods += node.weight
                env.process(_tracked(world.ctx, node, pod, on_pod_done))
