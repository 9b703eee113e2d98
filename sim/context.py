"""What every strategy process shares: the run's context and one registry request.

`fetch` is the single place a strategy talks to the registry: it runs the request through the
node's endpoint (with the cohort weight) and adds the bytes to the pod's counter by purpose.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from imageformat.toc import Compression
from sim.image import SimImage, SimLayer
from sim.node import PodState, SimNode
from sim.params import CalibratedParams
from sim.workload import CompiledTrace
from startup.scenario import PullSpec

Proc = Generator[simpy.Event, Any, Any]


@dataclass
class SimContext:
    env: simpy.Environment
    params: CalibratedParams
    pull: PullSpec
    images: dict[str, SimImage]
    traces: dict[str, CompiledTrace]
    coalesce: bool = True  # replay cache hits as one timeout (exact; False = one timeout per op, for tests)

    def decode_rate(self, layer: SimLayer) -> float:
        p = self.params
        return (
            p.gzip_decode_bytes_per_s if layer.compression is Compression.GZIP else p.zstd_decode_bytes_per_s
        )


class PodEvicted(Exception):
    """The node was drained while the pod was starting."""


def fetch(
    ctx: SimContext, node: SimNode, pod: PodState | None, nbytes: int, ranges: int, counter: str
) -> Proc:
    got = yield from node.registry.request(node.link, node.rtt_s, nbytes, ranges, node.weight)
    if node.registry.overhead_is_cpu:
        yield from node.compute(node.registry.request_overhead_s)
    if pod is not None:
        pod.requests += 1
        pod.ranges += ranges
        setattr(pod, counter, getattr(pod, counter) + got)
    return got


def count_runs(units: list[int]) -> int:
    return 1 + sum(1 for a, b in itertools.pairwise(units) if b != a + 1) if units else 0


# -- full ------------------------------------------------------------------------------------------
