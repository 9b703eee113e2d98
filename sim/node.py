"""A node (or a cohort of identical nodes): link, RTT, cores, kubelet pull lock, and the
node-local state every pod on it shares — materialized layers, the partial-pull chunk store,
the lazy store's per-layer caches (fetched/decoded units, in-flight fetches), the background
fetcher with its pause while on-demand reads are in flight, and FUSE CPU time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from nodeconfig.layerstate import ImageRecord, LayerStateDecision, check_layer_state
from sim.host import SharedHost
from sim.image import SimLayer, Units
from sim.network import Link
from sim.registry import Registry
from startup.modes import PullMode

MISSING, FETCHED, DECODED = 0, 1, 2
_LAZY = (PullMode.LAZY, PullMode.LAZY_PREFETCH)  # modes whose layers live in the store


@dataclass
class PodState:
    """Mutable counters of one pod start; turned into StartupRecords at collection time."""

    pod: str
    image: str
    mode: PullMode
    submitted_s: float
    resolved_s: float = float("nan")
    pulled_s: float = float("nan")
    created_s: float = float("nan")
    ready_s: float = float("nan")
    bytes_manifest: int = 0
    bytes_toc: int = 0
    bytes_layers: int = 0
    bytes_on_demand: int = 0
    bytes_prefetch: int = 0
    bytes_background: int = 0
    bytes_reused: int = 0
    requests: int = 0
    ranges: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    fuse_ops: int = 0
    fuse_cpu_s: float = 0.0
    error: str = ""
    pod_names: list[str] = field(default_factory=list)  # per cohort member


class LazyLayerState:
    """stargz-store's view of one layer on one node: TOC, unit cache, in-flight fetches."""

    def __init__(self, env: simpy.Environment, layer: SimLayer, units: Units) -> None:
        self.layer = layer
        self.units = units
        self.state = bytearray(units.count)
        self.inflight: dict[int, Any] = {}  # unit -> sim.lazy.InFlight
        self.toc_ready = env.event()
        self.background_started = False
        self.owner: PodState | None = None  # pod that triggered the mount (background bytes go there)


class SimNode:

    def __init__(
        self,
        env: simpy.Environment,
        *,
        index: int,
        members: list[str],
        link: Link,
        registry: Registry,
        rtt_s: float,
        cores: int | SharedHost,
        pull_slots: int,
        background_concurrency: int,
    ) -> None:
        self.env = env
        self.index = index
        self.members = members  # node names this (cohort) node stands for
        self.weight = len(members)
        self.link = link
        self.registry = registry
        self.rtt_s = rtt_s
        # a SharedHost passed in: one host's cores shared with the other nodes (cluster.host_cores)
        self.host = cores if isinstance(cores, SharedHost) else None
        self.host_cpu = self.host.node_cpu(members[0]) if self.host is not None else None
        self.cores = None if isinstance(cores, SharedHost) else simpy.Resource(env, capacity=cores)
        self.pull_lock = simpy.Resource(env, capacity=pull_slots) if pull_slots > 0 else None
        self.local_layers: dict[str, simpy.Event] = {}  # digest -> fires when materialized
        self.partial_layers: set[str] = set()  # layers whose TOC feeds the dedup cache
        self.file_digests: set[str] = set()
        self.chunk_digests: set[str] = set()
        self.lazy_layers: dict[str, LazyLayerState] = {}
        self.present: dict[str, PullMode] = {}  # image name -> mode that made it present
        self.ondemand = 0  # on-demand fetches in flight
        self.idle = env.event()
        self.idle.succeed()
        self.epoch = 0  # bumped by a reboot: background work of an older epoch stops
        self.bg_queue: deque[tuple[LazyLayerState, int, int, PodState | None]] = deque()
        self.bg_wake = env.event()
        self.bg_workers = 0  # background workers of the current boot (`bg_epoch`)
        self.bg_epoch = 0
        self.background_concurrency = background_concurrency
        self.fuse_cpu_s = 0.0
        self.cpu_s = 0.0  # decode + extract + lazy verify + TOC parse CPU
        self.compute_s = 0.0  # all CPU spent through compute(): on a shared host, every modelled cost
        self.pods: list[PodState] = []
        self.layer_state: str | None = None  # the check-layer-state file (None: none yet)
        self.layer_state_log: list[LayerStateDecision] = []  # one decision per boot

    def compute(self, cpu_s: float) -> Generator[simpy.Event, Any, None]:
        """Spend `cpu_s` of CPU: on one of the node's cores (FIFO behind its other CPU work), or
        processor-shared on the host it shares with other nodes."""
        if cpu_s <= 0:
            return
        self.compute_s += cpu_s
        if self.cores is None:
            assert self.host is not None and self.host_cpu is not None
            yield self.host.run(self.host_cpu, cpu_s)
        else:
            with self.cores.request() as core:
                yield core
                yield self.env.timeout(cpu_s)

    @property
    def name(self) -> str:
        return self.members[0]

    def begin_on_demand(self) -> None:
        if self.ondemand == 0:
            self.idle = self.env.event()
        self.ondemand += 1

    def end_on_demand(self) -> None:
        self.ondemand -= 1
        if self.ondemand == 0:
            self.idle.succeed()

    def lazy_state(self, layer: SimLayer, granularity: str, block_bytes: int) -> tuple[LazyLayerState, bool]:
        """The layer's lazy state on this node, and whether this call created it."""
        st = self.lazy_layers.get(layer.digest)
        if st is not None:
            return st, False
        st = LazyLayerState(self.env, layer, layer.units(granularity, block_bytes))
        self.lazy_layers[layer.digest] = st
        return st, True

    def wipe_lazy(self, previous_marker: str | None, current_marker: str) -> LayerStateDecision:
        """`crio check-layer-state` at boot (`nodeconfig.layerstate`, the emulator's rule too): when
        the state marker differs from the configuration's, drop the lazily pulled images and the
        store's state. The decision (transition, removed images) is kept in `layer_state_log`."""
        images = [
            ImageRecord(reference=name, als_layers=1 if mode in _LAZY else 0)
            for name, mode in self.present.items()
        ]
        decision = check_layer_state(previous_marker, current_marker, images)
        if decision.changed:
            self.lazy_layers.clear()
            self.bg_queue.clear()
            for image in decision.remove:
                del self.present[image.reference]
        self.layer_state = decision.new_state
        self.layer_state_log.append(decision)
        self.epoch += 1
        return decision
