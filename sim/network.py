"""Fluid max-min fair sharing of node links and registry egress.

Topology: every transfer goes from one endpoint (registry or mirror, capacity `E x eff(n)`)
down one node link (capacity `c`). A link may stand for `weight` identical nodes (a cohort):
its flows then count `weight` times at the endpoint. All flows on one link get the same rate
`rho = min(c / n, r)`, where `n` is the link's flow count and `r` the endpoint's fair share,
the water level solving `sum_L w c + r * sum_R w n = E_eff` with L = links whose per-flow
demand `c / n <= r` (link-bound) and R the others (endpoint-bound). That is the max-min fair
allocation of this two-level tree.

Rates change only when a transfer starts or ends. To avoid touching every flow then, progress
is kept in virtual clocks: endpoint-bound links advance with the endpoint clock `V = integral r dt`
(a change of `r` reschedules nothing); a link-bound link advances at its own `c / n`. Per link,
flows sit in a heap by virtual finish; per endpoint, links sit in two heaps (by V-finish, by
real finish time). An event costs O(log n) plus the links that change class.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from itertools import count

import simpy

EPS_BYTES = 1e-6  # completion tolerance on virtual byte clocks


class Flow:
    __slots__ = ("done", "finish_w", "link", "size_bytes")

    def __init__(self, link: Link, size_bytes: float, finish_w: float, done: simpy.Event) -> None:
        self.link = link
        self.size_bytes = size_bytes
        self.finish_w = finish_w
        self.done = done


class Link:
    """A node's downlink (or a cohort of `weight` identical ones) towards one endpoint."""

    __slots__ = ("bound", "capacity", "endpoint", "flows", "name", "t0", "version", "w0", "weight")

    def __init__(self, name: str, capacity: float, weight: int, endpoint: Endpoint) -> None:
        self.name = name
        self.capacity = capacity
        self.weight = weight
        self.endpoint = endpoint
        self.flows: list[tuple[float, int, Flow]] = []  # heap by virtual finish
        self.bound = ""  # "", "L" (link-bound) or "R" (endpoint-bound)
        self.w0 = 0.0  # virtual clock: L -> value at t0; R -> offset to endpoint V
        self.t0 = 0.0
        self.version = 0

    @property
    def n(self) -> int:
        return len(self.flows)

    @property
    def theta(self) -> float:
        return self.capacity / len(self.flows)


class Endpoint:
    """A registry or mirror's egress, shared max-min fairly by the links that pull from it."""

    def __init__(
        self, net: Network, name: str, capacity: float, efficiency: Callable[[int], float] = lambda n: 1.0
    ) -> None:
        self.net = net
        self.name = name
        self.capacity = capacity
        self.efficiency = efficiency
        self.v = 0.0
        self.t_last = 0.0
        self.r = math.inf
        self.sum_l = 0.0  # sum of w*c over link-bound links
        self.sum_rn = 0  # sum of w*n over endpoint-bound links
        self.flows_weighted = 0  # sum of w*n over all links
        self.heap_r: list[tuple[float, int, int, Link]] = []  # (V-finish, seq, version, link)
        self.heap_l: list[tuple[float, int, int, Link]] = []  # (real finish, seq, version, link)
        self.theta_r: list[tuple[float, int, int, Link]] = []  # min-heap of theta over R
        self.theta_l: list[tuple[float, int, int, Link]] = []  # max-heap (negated) over L
        self.timer_at = math.inf  # the earliest pending wake-up
        self.bytes_delivered = 0.0
        self.rate = 0.0  # current total egress (bytes/s), for utilisation checks
        self.peak_rate = 0.0
        self.on_rate: Callable[[float, float, float], None] | None = None  # (t0, t1, rate) accounting

    # -- clocks ----------------------------------------------------------------------------------
    @property
    def capacity_now(self) -> float:
        return self.capacity * self.efficiency(self.flows_weighted)

    def _advance(self, now: float) -> None:
        dt = now - self.t_last
        if dt > 0:
            if self.sum_rn > 0 and math.isfinite(self.r):
                self.v += self.r * dt
            if self.rate > 0:
                self.bytes_delivered += self.rate * dt
                if self.on_rate is not None:
                    self.on_rate(self.t_last, now, self.rate)
        self.t_last = now

    def _w(self, link: Link, now: float) -> float:
        if link.bound == "R":
            return self.v + link.w0
        if link.bound == "L":
            return link.w0 + link.theta * (now - link.t0)
        return link.w0

    def _compute_r(self) -> float:
        free = self.capacity_now - self.sum_l
        if self.sum_rn == 0:
            return math.inf if free >= -1e-9 * self.capacity else -math.inf
        return free / self.sum_rn

    # -- class membership ------------------------------------------------------------------------
    def _detach(self, link: Link, now: float) -> None:
        """Freeze the link's virtual clock at `now` and take it out of its class."""
        w = self._w(link, now)
        if link.bound == "L":
            self.sum_l -= link.weight * link.capacity
        elif link.bound == "R":
            self.sum_rn -= link.weight * link.n
        self.flows_weighted -= link.weight * link.n
        link.bound = ""
        link.w0 = w
        link.t0 = now
        link.version += 1

    def _attach(self, link: Link, bound: str, now: float) -> None:
        seq = next(self.net.seq)
        link.version += 1
        self.flows_weighted += link.weight * link.n
        theta = link.theta
        head = link.flows[0][0]
        if bound == "R":
            link.bound = "R"
            link.w0 = link.w0 - self.v
            self.sum_rn += link.weight * link.n
            heapq.heappush(self.heap_r, (head - link.w0, seq, link.version, link))
            heapq.heappush(self.theta_r, (theta, seq, link.version, link))
        else:
            link.bound = "L"
            link.t0 = now
            self.sum_l += link.weight * link.capacity
            heapq.heappush(self.heap_l, (now + (head - link.w0) / theta, seq, link.version, link))
            heapq.heappush(self.theta_l, (-theta, seq, link.version, link))

    def _top(self, heap: list[tuple[float, int, int, Link]]) -> tuple[float, Link] | None:
        while heap:
            key, _, version, link = heap[0]
            if version == link.version:
                return key, link
            heapq.heappop(heap)
        return None

    def _rebalance(self, now: float) -> None:
        if self.sum_rn == 0 and self.sum_l == 0:
            self.sum_l = 0.0  # clear float drift when idle
        while True:
            r = self._compute_r()
            top_r = self._top(self.theta_r)
            if top_r is not None and top_r[0] <= r:
                link = top_r[1]
                self._detach(link, now)
                self._attach(link, "L", now)
                continue
            top_l = self._top(self.theta_l)
            if top_l is not None and -top_l[0] > r:
                link = top_l[1]
                self._detach(link, now)
                self._attach(link, "R", now)
                continue
            self.r = r
            break
        rn = self.sum_rn * self.r if self.sum_rn else 0.0
        self.rate = max(0.0, self.sum_l + rn)
        self.peak_rate = max(self.peak_rate, self.rate)

    # -- events ----------------------------------------------------------------------------------
    def _schedule(self, now: float) -> None:
        t = math.inf
        top = self._top(self.heap_l)
        if top is not None:
            t = top[0]
        top = self._top(self.heap_r)
        if top is not None and self.r > 0 and math.isfinite(self.r):
            t = min(t, now + max(0.0, top[0] - self.v) / self.r)
        if t >= self.timer_at:
            return  # an earlier wake-up is pending; it will look again
        delay = max(0.0, t - now)
        self.timer_at = now + delay  # exactly the instant SimPy will fire it (rounding included)
        ev = self.net.env.timeout(delay)
        ev.callbacks.append(self._on_timer)

    def _on_timer(self, _ev: simpy.Event) -> None:
        """A wake-up: complete what is due, then make sure one wake-up precedes the next completion.

        Invariant: a timeout is pending at `timer_at` <= the next completion. A wake-up that comes
        early (rates fell since it was set) completes nothing and schedules the next one.
        """
        now = self.net.env.now
        if now >= self.timer_at:
            self.timer_at = math.inf
        self._advance(now)
        changed: list[Link] = []
        for heap in (self.heap_l, self.heap_r):
            while True:
                top = self._top(heap)
                if top is None:
                    break
                link = top[1]
                w = self._w(link, now)
                head = link.flows[0][0]
                if head > w + EPS_BYTES + 1e-12 * abs(w):
                    break
                self._detach(link, now)
                while link.flows and link.flows[0][0] <= w + EPS_BYTES + 1e-12 * abs(w):
                    _, _, flow = heapq.heappop(link.flows)
                    flow.done.succeed(flow.size_bytes)
                changed.append(link)
        for link in changed:
            if link.flows and link.bound == "":
                self._attach(link, "R", now)
        self._rebalance(now)
        self._schedule(now)

    def start(self, link: Link, size_bytes: float) -> simpy.Event:
        env = self.net.env
        done = env.event()
        if size_bytes <= 0:
            done.succeed(0.0)
            return done
        now = env.now
        self._advance(now)
        if link.bound:
            self._detach(link, now)
        flow = Flow(link, size_bytes, link.w0 + size_bytes, done)
        heapq.heappush(link.flows, (flow.finish_w, next(self.net.seq), flow))
        self._attach(link, "R", now)
        self._rebalance(now)
        self._schedule(now)
        return done


class Network:
    """All endpoints and links of one simulation."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.seq = count()
        self.endpoints: list[Endpoint] = []

    def endpoint(
        self, name: str, capacity_bytes_per_s: float, efficiency: Callable[[int], float] = lambda n: 1.0
    ) -> Endpoint:
        ep = Endpoint(self, name, capacity_bytes_per_s, efficiency)
        self.endpoints.append(ep)
        return ep

    def link(self, name: str, capacity_bytes_per_s: float, endpoint: Endpoint, weight: int = 1) -> Link:
        return Link(name, capacity_bytes_per_s, weight, endpoint)

    def transfer(self, link: Link, size_bytes: float) -> simpy.Event:
        """An event that fires when `size_bytes` have crossed `link` (value: the size)."""
        return link.endpoint.start(link, size_bytes)
