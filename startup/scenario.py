"""The scenario both engines run: cluster, registry, images, workload, arrivals, pull settings.

Frozen keyword-only dataclasses with units in the names, validated in `__post_init__` (no I/O).
Variants are tagged unions; each has ONE kind -> class table below (`IMAGE_KINDS`,
`WORKLOAD_KINDS`, `ARRIVAL_KINDS`, `OVERLOAD_KINDS`, `PREFETCH_KINDS`). Loading from TOML,
`--set` overrides and writing the effective config live in `startup.scenario_io`.

The simulator reads every field; the emulator reads the fields that describe the same thing
(images, workload, arrivals, pull settings, node link/RTT) and ignores the `[sim]` table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from startup.modes import PullMode


class ScenarioError(ValueError):
    """A scenario that is malformed: unknown key, wrong type, or a violated constraint."""


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ScenarioError(message)


def _ge(name: str, value: float, bound: float) -> None:
    _check(
        isinstance(value, int | float) and math.isfinite(value) and value >= bound,
        f"{name} (={value}) must be >= {bound:g}",
    )


def _gt(name: str, value: float, bound: float) -> None:
    _check(
        isinstance(value, int | float) and math.isfinite(value) and value > bound,
        f"{name} (={value}) must be > {bound:g}",
    )


def _frac(name: str, value: float) -> None:
    _check(0.0 <= value <= 1.0, f"{name} (={value}) must be in [0, 1]")


# -- cluster -------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    """N identical nodes; node i joins at `join_at_s + i * join_interval_s` (scale-out)."""

    nodes: int = 1
    link_bandwidth_bytes_per_s: float = 125e6  # 1 Gbit/s node downlink
    rtt_s: float = 0.001  # round trip to the registry (and to each mirror unless it says otherwise)
    cores: int = 4
    # cores of ONE host shared by all nodes (a testbed emulating the nodes in one process);
    # 0 = every node has its own `cores` (a real cluster)
    host_cores: int = 0
    join_at_s: float = 0.0
    join_interval_s: float = 0.0
    serialize_image_pulls: bool = True  # kubelet --serialize-image-pulls (default true)
    max_parallel_image_pulls: int = 0  # with serialize_image_pulls=false; 0 = unlimited

    def __post_init__(self) -> None:
        _ge("cluster.nodes", self.nodes, 1)
        _gt("cluster.link_bandwidth_bytes_per_s", self.link_bandwidth_bytes_per_s, 0)
        _ge("cluster.rtt_s", self.rtt_s, 0)
        _ge("cluster.cores", self.cores, 1)
        _ge("cluster.host_cores", self.host_cores, 0)
        _ge("cluster.join_at_s", self.join_at_s, 0)
        _ge("cluster.join_interval_s", self.join_interval_s, 0)
        _ge("cluster.max_parallel_image_pulls", self.max_parallel_image_pulls, 0)


# -- registry ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class NoOverload:
    """Egress efficiency stays 1 whatever the number of concurrent transfers."""

    KIND: ClassVar[str] = "none"


@dataclass(frozen=True, kw_only=True)
class LinearOverload:
    """Efficiency 1 up to `knee_transfers`, then falls by `slope` per extra transfer, floored."""

    KIND: ClassVar[str] = "linear"
    knee_transfers: int = 100
    slope_per_transfer: float = 0.001
    min_efficiency: float = 0.5

    def __post_init__(self) -> None:
        _ge("registry.overload.knee_transfers", self.knee_transfers, 0)
        _ge("registry.overload.slope_per_transfer", self.slope_per_transfer, 0)
        _check(
            0 < self.min_efficiency <= 1,
            f"registry.overload.min_efficiency (={self.min_efficiency}) must be in (0, 1]",
        )


@dataclass(frozen=True, kw_only=True)
class TableOverload:
    """Calibrated efficiency at given transfer counts, linearly interpolated, flat outside."""

    KIND: ClassVar[str] = "table"
    transfers: tuple[int, ...] = (1,)
    efficiency: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        _check(
            len(self.transfers) == len(self.efficiency) >= 1,
            "registry.overload.transfers and .efficiency must have the same non-zero length",
        )
        _check(
            all(a < b for a, b in zip(self.transfers, self.transfers[1:], strict=False)),
            "registry.overload.transfers must be strictly increasing",
        )
        for e in self.efficiency:
            _check(0 < e <= 1, f"registry.overload.efficiency (={e}) must be in (0, 1]")


OverloadSpec = NoOverload | LinearOverload | TableOverload
OVERLOAD_KINDS: Mapping[str, type] = {c.KIND: c for c in (NoOverload, LinearOverload, TableOverload)}


@dataclass(frozen=True, kw_only=True)
class RateLimitSpec:
    """Token bucket on requests; an over-limit request gets 429 and retries after `retry_after_s`."""

    requests_per_s: float = 0.0  # 0 = no rate limit
    burst: int = 100
    retry_after_s: float = 1.0
    max_retries: int = 5  # after that the pod fails with a recorded error

    def __post_init__(self) -> None:
        _ge("registry.rate_limit.requests_per_s", self.requests_per_s, 0)
        _ge("registry.rate_limit.burst", self.burst, 1)
        _ge("registry.rate_limit.retry_after_s", self.retry_after_s, 0)
        _ge("registry.rate_limit.max_retries", self.max_retries, 0)


@dataclass(frozen=True, kw_only=True)
class MirrorSpec:
    """A pull-through mirror; node i uses endpoint i mod (1 + number of mirrors), 0 = registry."""

    name: str
    egress_bandwidth_bytes_per_s: float = 1.25e9
    rtt_s: float = -1.0  # -1 = the cluster's rtt_s
    service_time_s: float = 0.0

    def __post_init__(self) -> None:
        _check(bool(self.name), "registry.mirrors.name must not be empty")
        _gt("registry.mirrors.egress_bandwidth_bytes_per_s", self.egress_bandwidth_bytes_per_s, 0)
        _check(
            self.rtt_s == -1.0 or self.rtt_s >= 0,
            f"registry.mirrors.rtt_s (={self.rtt_s}) must be >= 0 or -1",
        )
        _ge("registry.mirrors.service_time_s", self.service_time_s, 0)


@dataclass(frozen=True, kw_only=True)
class RegistrySpec:
    egress_bandwidth_bytes_per_s: float = 1.25e9  # 10 Gbit/s
    service_time_s: float = 0.0005  # per request, before the first byte (on top of the RTT)
    max_concurrent_requests: int = 0  # 0 = unlimited; excess requests queue
    overload: OverloadSpec = field(default_factory=NoOverload)
    rate_limit: RateLimitSpec = field(default_factory=RateLimitSpec)
    mirrors: tuple[MirrorSpec, ...] = ()
    manifest_bytes: int = 2_000  # manifest (index+manifest) body size
    config_bytes: int = 6_000

    def __post_init__(self) -> None:
        _gt("registry.egress_bandwidth_bytes_per_s", self.egress_bandwidth_bytes_per_s, 0)
        _ge("registry.service_time_s", self.service_time_s, 0)
        _ge("registry.max_concurrent_requests", self.max_concurrent_requests, 0)
        _ge("registry.manifest_bytes", self.manifest_bytes, 0)
        _ge("registry.config_bytes", self.config_bytes, 0)
        names = [m.name for m in self.mirrors]
        _check(len(names) == len(set(names)), "registry.mirrors names must be unique")


# -- images --------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class OciImageSpec:
    """A real image: an OCI layout directory and a tag (TOCs read through imageformat)."""

    KIND: ClassVar[str] = "oci"
    name: str
    layout: str  # path of the OCI image layout (relative paths: relative to the scenario file)
    tag: str = "latest"

    def __post_init__(self) -> None:
        _check(bool(self.name), "images.name must not be empty")
        _check(bool(self.layout), "images.layout must not be empty")


@dataclass(frozen=True, kw_only=True)
class SyntheticLayerSpec:
    """A generated layer. Layers with the same `name` (in any image) are the same blob."""

    name: str
    files: int = 1000
    total_bytes: int = 100_000_000  # uncompressed file content
    size_sigma: float = 1.5  # lognormal sigma of file sizes (0 = all equal)
    compression_ratio: float = 0.4  # compressed / uncompressed
    chunk_bytes: int = 65_536  # average chunk size (zstd:chunked ~64 KiB)
    format: str = "zstd:chunked"  # zstd:chunked or estargz (TOC layout only)
    derived_from: str = ""  # name of another layer: same files, `changed_fraction` of them new
    changed_fraction: float = 0.0

    def __post_init__(self) -> None:
        _check(bool(self.name), "images.layers.name must not be empty")
        _ge("images.layers.files", self.files, 1)
        _ge("images.layers.total_bytes", self.total_bytes, self.files)
        _ge("images.layers.size_sigma", self.size_sigma, 0)
        _check(
            0 < self.compression_ratio <= 1.1,
            f"images.layers.compression_ratio (={self.compression_ratio}) must be in (0, 1.1]",
        )
        _ge("images.layers.chunk_bytes", self.chunk_bytes, 512)
        _check(
            self.format in ("zstd:chunked", "estargz"),
            f"images.layers.format (={self.format!r}) must be 'zstd:chunked' or 'estargz'",
        )
        _frac("images.layers.changed_fraction", self.changed_fraction)
        _check(self.derived_from != self.name, "images.layers.derived_from must name another layer")


@dataclass(frozen=True, kw_only=True)
class SyntheticImageSpec:
    KIND: ClassVar[str] = "synthetic"
    name: str
    layers: tuple[SyntheticLayerSpec, ...] = ()

    def __post_init__(self) -> None:
        _check(bool(self.name), "images.name must not be empty")
        _check(len(self.layers) >= 1, f"images.layers of {self.name!r} must list at least one layer")


ImageSpec = OciImageSpec | SyntheticImageSpec
IMAGE_KINDS: Mapping[str, type] = {c.KIND: c for c in (OciImageSpec, SyntheticImageSpec)}


# -- workload ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TraceWorkload:
    """Replay a recorded `startup.trace.Trace` file (the same trace for every image)."""

    KIND: ClassVar[str] = "trace"
    path: str

    def __post_init__(self) -> None:
        _check(bool(self.path), "workload.path must not be empty")


@dataclass(frozen=True, kw_only=True)
class SyntheticWorkload:
    """Generated by `startup.tracegen` from the image's file list (one trace per image)."""

    KIND: ClassVar[str] = "synthetic"
    reads: int = 200
    working_set_fraction: float = 0.05  # of the image's file bytes
    zipf_s: float = 1.1  # popularity exponent of files in the working set (0 = uniform)
    pattern: str = "sequential"  # sequential | random (offsets within a file)
    read_bytes: int = 131_072  # size of one read
    think_s: float = 0.0005  # compute before each read
    stats_per_read: float = 0.0  # extra stat ops per read (metadata-only traffic)

    def __post_init__(self) -> None:
        _ge("workload.reads", self.reads, 0)
        _check(
            0 < self.working_set_fraction <= 1,
            f"workload.working_set_fraction (={self.working_set_fraction}) must be in (0, 1]",
        )
        _ge("workload.zipf_s", self.zipf_s, 0)
        _check(
            self.pattern in ("sequential", "random"),
            f"workload.pattern (={self.pattern!r}) must be 'sequential' or 'random'",
        )
        _ge("workload.read_bytes", self.read_bytes, 1)
        _ge("workload.think_s", self.think_s, 0)
        _ge("workload.stats_per_read", self.stats_per_read, 0)


@dataclass(frozen=True, kw_only=True)
class EmptyWorkload:
    """No file access: ready as soon as the container is created."""

    KIND: ClassVar[str] = "empty"


WorkloadSpec = TraceWorkload | SyntheticWorkload | EmptyWorkload
WORKLOAD_KINDS: Mapping[str, type] = {c.KIND: c for c in (TraceWorkload, SyntheticWorkload, EmptyWorkload)}


# -- arrivals ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RolloutArrivals:
    """`replicas` pods at `at_s` (+ i * stagger_s), spread round-robin over the nodes."""

    KIND: ClassVar[str] = "rollout"
    replicas: int = 1
    at_s: float = 0.0
    stagger_s: float = 0.0

    def __post_init__(self) -> None:
        _ge("arrivals.replicas", self.replicas, 1)
        _ge("arrivals.at_s", self.at_s, 0)
        _ge("arrivals.stagger_s", self.stagger_s, 0)


@dataclass(frozen=True, kw_only=True)
class PoissonArrivals:
    """`pods` pods with exponential inter-arrival times (seeded), nodes round-robin."""

    KIND: ClassVar[str] = "poisson"
    pods: int = 100
    rate_per_s: float = 10.0
    at_s: float = 0.0

    def __post_init__(self) -> None:
        _ge("arrivals.pods", self.pods, 1)
        _gt("arrivals.rate_per_s", self.rate_per_s, 0)
        _ge("arrivals.at_s", self.at_s, 0)


@dataclass(frozen=True, kw_only=True)
class RecordedArrivals:
    """Pods at the given times (e.g. a recorded serverless burst), nodes round-robin."""

    KIND: ClassVar[str] = "recorded"
    times_s: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _check(len(self.times_s) >= 1, "arrivals.times_s must list at least one time")
        for t in self.times_s:
            _ge("arrivals.times_s", t, 0)


@dataclass(frozen=True, kw_only=True)
class PerNodeArrivals:
    """Each node gets `pods_per_node` pods when it joins (scale-out, DaemonSets)."""

    KIND: ClassVar[str] = "per-node"
    pods_per_node: int = 1

    def __post_init__(self) -> None:
        _ge("arrivals.pods_per_node", self.pods_per_node, 1)


ArrivalSpec = RolloutArrivals | PoissonArrivals | RecordedArrivals | PerNodeArrivals
ARRIVAL_KINDS: Mapping[str, type] = {
    c.KIND: c for c in (RolloutArrivals, PoissonArrivals, RecordedArrivals, PerNodeArrivals)
}


# -- pull settings ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class NoPrefetch:
    KIND: ClassVar[str] = "none"


@dataclass(frozen=True, kw_only=True)
class LandmarkPrefetch:
    """Blob range before `.prefetch.landmark`; with `fallback_to_trace`, the trace's units if absent."""

    KIND: ClassVar[str] = "landmark"
    fallback_to_trace: bool = True


@dataclass(frozen=True, kw_only=True)
class TracePrefetch:
    """The fetch units the workload's trace will read (a recorded prioritized list)."""

    KIND: ClassVar[str] = "trace"


@dataclass(frozen=True, kw_only=True)
class FirstBytesPrefetch:
    """The first `bytes` of every layer blob (stargz-store `prefetch_size`)."""

    KIND: ClassVar[str] = "first-bytes"
    bytes: int = 10_000_000

    def __post_init__(self) -> None:
        _ge("pull.prefetch.bytes", self.bytes, 0)


PrefetchSpec = NoPrefetch | LandmarkPrefetch | TracePrefetch | FirstBytesPrefetch
PREFETCH_KINDS: Mapping[str, type] = {
    c.KIND: c for c in (NoPrefetch, LandmarkPrefetch, TracePrefetch, FirstBytesPrefetch)
}


@dataclass(frozen=True, kw_only=True)
class PullSpec:
    """Parameters of the real pullers, with their defaults (formats spec §2.4, §4.4)."""

    max_parallel_layers: int = 6  # containers/image copies up to 6 layers at once
    partial_max_ranges: int = 1024  # c/storage maxNumberMissingChunks
    partial_merge_gap_bytes: int = 1024  # c/storage autoMergePartsThreshold
    lazy_granularity: str = "block"  # block (stargz-store) | chunk (TOC chunks)
    block_bytes: int = 50_000  # stargz-store blob.chunk_size
    background_fetch: bool = True
    background_concurrency: int = 2  # stargz-store task manager max_concurrency
    background_request_bytes: int = 1_000_000  # blob bytes per background GET
    background_resume_delay_s: float = 0.0  # wait after on-demand reads drain before resuming
    prefetch: PrefetchSpec = field(default_factory=LandmarkPrefetch)

    def __post_init__(self) -> None:
        _ge("pull.max_parallel_layers", self.max_parallel_layers, 1)
        _ge("pull.partial_max_ranges", self.partial_max_ranges, 1)
        _ge("pull.partial_merge_gap_bytes", self.partial_merge_gap_bytes, 0)
        _check(
            self.lazy_granularity in ("block", "chunk"),
            f"pull.lazy_granularity (={self.lazy_granularity!r}) must be 'block' or 'chunk'",
        )
        _ge("pull.block_bytes", self.block_bytes, 1)
        _ge("pull.background_concurrency", self.background_concurrency, 1)
        _ge("pull.background_request_bytes", self.background_request_bytes, 1)
        _ge("pull.background_resume_delay_s", self.background_resume_delay_s, 0)


@dataclass(frozen=True, kw_only=True)
class ToggleSpec:
    """Machine-config-pool change at `at_s`: nodes drain and reboot `max_unavailable` at a time;
    on boot `crio check-layer-state` wipes lazily pulled images; the node's pods restart in `to_mode`."""

    at_s: float = 0.0
    max_unavailable: int = 1
    drain_s: float = 5.0
    reboot_s: float = 60.0
    to_mode: PullMode = PullMode.FULL

    def __post_init__(self) -> None:
        _ge("toggle.at_s", self.at_s, 0)
        _ge("toggle.max_unavailable", self.max_unavailable, 1)
        _ge("toggle.drain_s", self.drain_s, 0)
        _ge("toggle.reboot_s", self.reboot_s, 0)


@dataclass(frozen=True, kw_only=True)
class SimSpec:
    """Simulator-only settings (the emulator ignores this table)."""

    params_file: str = ""  # CalibratedParams TOML/JSON; "" = documented defaults
    cohorts: bool = True  # aggregate identical, simultaneous nodes (exact; see docs/model.md)
    horizon_s: float = 86_400.0  # stop the clock here; unfinished pods get an error
    egress_sample_s: float = 1.0  # registry egress time-series resolution

    def __post_init__(self) -> None:
        _gt("sim.horizon_s", self.horizon_s, 0)
        _gt("sim.egress_sample_s", self.egress_sample_s, 0)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    seed: int = 0
    name: str = "scenario"
    mode: PullMode = PullMode.LAZY
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    registry: RegistrySpec = field(default_factory=RegistrySpec)
    images: tuple[ImageSpec, ...] = ()
    workload: WorkloadSpec = field(default_factory=EmptyWorkload)
    arrivals: ArrivalSpec = field(default_factory=RolloutArrivals)
    pull: PullSpec = field(default_factory=PullSpec)
    toggle: ToggleSpec | None = None
    sim: SimSpec = field(default_factory=SimSpec)
    # directory relative paths resolve against: set by the loader, never read from or written to TOML
    base_dir: str = field(default="", metadata={"toml": False}, compare=False)

    def __post_init__(self) -> None:
        _check(isinstance(self.seed, int) and self.seed >= 0, f"seed (={self.seed}) must be an integer >= 0")
        _check(bool(self.name), "name must not be empty")
        _check(len(self.images) >= 1, "images must list at least one image")
        names = [i.name for i in self.images]
        _check(len(names) == len(set(names)), f"images names must be unique (got {names})")
        layers: dict[str, SyntheticLayerSpec] = {}
        for img in self.images:
            if isinstance(img, SyntheticImageSpec):
                for layer in img.layers:
                    prev = layers.setdefault(layer.name, layer)
                    _check(prev == layer, f"layer {layer.name!r} is declared twice with different settings")
        for layer in layers.values():
            if layer.derived_from:
                _check(
                    layer.derived_from in layers,
                    f"images.layers.derived_from (={layer.derived_from!r}) names no layer",
                )

    def resolve_path(self, path: str) -> str:
        """A path from the scenario, relative to the scenario file's directory."""
        import posixpath

        if not path or posixpath.isabs(path) or not self.base_dir:
            return path
        return posixpath.join(self.base_dir, path)
