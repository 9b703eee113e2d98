"""A registry (or mirror) as the simulator sees it: per-request latency and service time, an
optional concurrency limit, a token-bucket rate limit answered with 429 + retry, and an egress
`Endpoint` whose capacity follows the overload efficiency curve.

One request = wait for a concurrency slot (if limited) -> token check (429: the node spends one
RTT on the refusal, waits `retry_after_s`, retries) -> RTT + service time + calibrated
per-request overhead (time to first byte) -> the body through the fluid network -> release.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from sim.network import Endpoint, Link, Network
from startup.scenario import LinearOverload, NoOverload, OverloadSpec, RateLimitSpec, TableOverload


class RateLimitedError(Exception):
    """A request got 429 more often than `max_retries` allows."""


def efficiency_curve(spec: OverloadSpec) -> Callable[[int], float]:
    """Egress efficiency as a function of concurrent (weighted) transfers."""
    if isinstance(spec, NoOverload):
        return lambda n: 1.0
    if isinstance(spec, LinearOverload):
        knee, slope, floor = spec.knee_transfers, spec.slope_per_transfer, spec.min_efficiency
        return lambda n: 1.0 if n <= knee else max(floor, 1.0 - slope * (n - knee))
    if isinstance(spec, TableOverload):
        xs, ys = spec.transfers, spec.efficiency

        def table(n: int) -> float:
            if n <= xs[0]:
                return ys[0]
            if n >= xs[-1]:
                return ys[-1]
            i = bisect.bisect_right(xs, n)
            x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
            return y0 + (y1 - y0) * (n - x0) / (x1 - x0)

        return table
    raise TypeError(f"unknown overload model {spec!r}")


@dataclass
class RequestStats:
    requests: int = 0
    ranges: int = 0
    bytes: int = 0
    throttled: int = 0  # 429 answers


class TokenBucket:
    def __init__(self, spec: RateLimitSpec) -> None:
        self.rate = spec.requests_per_s
        self.burst = float(spec.burst)
        self.tokens = float(spec.burst)
        self.t = 0.0

    def take(self, now: float, n: int) -> bool:
        if self.rate <= 0:
            return True
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class Registry:
    """One endpoint: the registry itself or a mirror."""

    def __init__(
        self,
        env: simpy.Environment,
        net: Network,
        *,
        name: str,
        egress_bytes_per_s: float,
        service_time_s: float,
        max_concurrent: int,
        overload: OverloadSpec,
        rate_limit: RateLimitSpec,
        request_overhead_s: float,
        overhead_is_cpu: bool = False,
    ) -> None:
        self.env = env
        self.name = name
        self.endpoint: Endpoint = net.endpoint(name, egress_bytes_per_s, efficiency_curve(overload))
        self.service_time_s = service_time_s
        self.request_overhead_s = request_overhead_s
        # testbed model (cluster.host_cores): client and registry run on one host, so the
        # per-request overhead is CPU the requesting node spends (sim.context.fetch), not a delay
        self.overhead_is_cpu = overhead_is_cpu
        self.slots = simpy.Resource(env, capacity=max_concurrent) if max_concurrent > 0 else None
        self.bucket = TokenBucket(rate_limit)
        self.rate_limit = rate_limit
        self.net = net
        self.stats = RequestStats()

    def request(
        self, link: Link, rtt_s: float, size_bytes: int, ranges: int = 1, weight: int = 1
    ) -> Generator[simpy.Event, Any, int]:
        """Process body: one GET of `size_bytes` (in `ranges` ranges). Returns the bytes moved.

        `weight` is the cohort multiplicity of the requesting link (counts requests that many times).
        """
        env = self.env
        attempts = 0
        while not self.bucket.take(env.now, weight):
            attempts += 1
            self.stats.throttled += weight
            self.stats.requests += weight
            if attempts > self.rate_limit.max_retries:
                raise RateLimitedError(f"{self.name}: 429 Too Many Requests after {attempts - 1} retries")
            yield env.timeout(rtt_s + self.rate_limit.retry_after_s)
        slot = None
        if self.slots is not None:
            slot = self.slots.request()
            yield slot
        try:
            latency = rtt_s + self.service_time_s + (0.0 if self.overhead_is_cpu else self.request_overhead_s)
            if latency > 0:
                yield env.timeout(latency)
            if size_bytes > 0:
                yield self.net.transfer(link, size_bytes)
        finally:
            if slot is not None and self.slots is not None:
                self.slots.release(slot)
        self.stats.requests += weight
        self.stats.ranges += ranges * weight
        self.stats.bytes += size_bytes * weight
        return size_bytes
