"""Small scenarios for the simulator tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from sim.params import CalibratedParams
from startup.modes import PullMode
from startup.scenario import (
    ClusterSpec,
    EmptyWorkload,
    NoPrefetch,
    PullSpec,
    RegistrySpec,
    RolloutArrivals,
    Scenario,
    SyntheticImageSpec,
    SyntheticLayerSpec,
    SyntheticWorkload,
)

# no hidden costs: analytic expectations hold exactly
ZERO_PARAMS = CalibratedParams(
    request_overhead_s=0.0,
    bandwidth_efficiency=1.0,
    fuse_op_s=0.0,
    fuse_byte_s=0.0,
    local_op_s=0.0,
    local_read_bytes_per_s=1e30,  # (must be finite) bytes / 1e30 vanishes beside any time here
    create_s=0.0,
)


def small_scenario(
    mode: PullMode = PullMode.LAZY,
    *,
    layers: int = 2,
    files: int = 40,
    total_bytes: int = 2_000_000,
    reads: int = 30,
    nodes: int = 1,
    replicas: int = 1,
    background: bool = False,
    fmt: str = "zstd:chunked",
    **changes: Any,
) -> Scenario:
    image = SyntheticImageSpec(
        name="img",
        layers=tuple(
            SyntheticLayerSpec(
                name=f"l{i}", files=files, total_bytes=total_bytes, chunk_bytes=16_384, format=fmt
            )
            for i in range(layers)
        ),
    )
    workload = (
        SyntheticWorkload(reads=reads, working_set_fraction=0.2, read_bytes=20_000)
        if reads
        else EmptyWorkload()
    )
    s = Scenario(
        seed=7,
        name="small",
        mode=mode,
        cluster=ClusterSpec(nodes=nodes, link_bandwidth_bytes_per_s=10e6, rtt_s=0.01),
        registry=RegistrySpec(egress_bandwidth_bytes_per_s=100e6, service_time_s=0.0),
        images=(image,),
        workload=workload,
        arrivals=RolloutArrivals(replicas=replicas),
        pull=PullSpec(background_fetch=background, prefetch=NoPrefetch()),
    )
    return dataclasses.replace(s, **changes)
