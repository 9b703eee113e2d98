"""The emulated link: per-transfer bandwidth, a registry-wide egress shared fairly, added latency,
a request-rate limit, a concurrency limit and an overload model.

Pacing is a virtual-clock scheduler: a body is sent in slices of ~`SLICE_S` of its current rate; each slice
reserves time on its transfer's clock (per-connection rate) and on the shared egress clock (FIFO across
transfers, so concurrent transfers interleave slice by slice: fair shares). A slice is written when both
reservations end (absolute `loop.time()` deadlines: no drift; a late wake-up is caught up to `SLACK_S`).
Rates are scaled by `LinkSpec.efficiency(active transfers)` (overload). The clocks are kept as accounting
so tests can check the schedule without timing wall-clock behaviour.

Wake-up precision: asyncio's epoll selector rounds every timeout up to a whole millisecond, so a
0.05 ms pacing wait or the last 0.3 ms of a latency wait each lasted ~1 ms more than configured.
On a `preciseloop` loop (what the CLI, the experiments and `running_registry` use) `sleep_until` is a
plain loop timer. On any other loop it sleeps coarsely until ~1.5 ms before the deadline and hands the
rest to one daemon timer thread per process (`PreciseTimer`: a Condition wait, microsecond precision)
that wakes the loop at the deadline (measured: 0.2-0.35 ms late vs 0.05-0.25 ms on the precise loop).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from . import preciseloop
from .config import LinkSpec

SLICE_S = 0.005  # target duration of one paced slice
SLACK_S = 0.02  # how far a late transfer may catch up (token-bucket depth)
MIN_SLICE_BYTES = 4096
MAX_SLICE_BYTES = 4 << 20
UNSHAPED_SLICE_BYTES = 1 << 20


@dataclass
class LinkStats:
    transfers_started: int = 0
    transfers_active: int = 0
    bytes_paced: int = 0
    requests_limited: int = 0


class Link:
    """One registry's link to its clients."""

    def __init__(self, spec: LinkSpec, clock: Callable[[], float] | None = None) -> None:
        self.spec = spec
        self._clock = clock
        self._egress_free_at = -math.inf
        self._bucket_tokens = float(spec.rate_burst)
        self._bucket_at: float | None = None
        self._sem = (
            asyncio.Semaphore(spec.max_concurrent_transfers) if spec.max_concurrent_transfers else None
        )
        self.stats = LinkStats()

    def now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    @property
    def active(self) -> int:
        return self.stats.transfers_active

    # ------------------------------------------------------------------ requests
    def admit(self) -> float | None:
        """Rate limit: None if the request may proceed, else the seconds until it could (Retry-After)."""
        rate = self.spec.rate_limit_per_s
        if rate is None:
            return None
        now = self.now()
        if self._bucket_at is not None:
            refill = (now - self._bucket_at) * rate
            self._bucket_tokens = min(self.spec.rate_burst, self._bucket_tokens + refill)
        self._bucket_at = now
        if self._bucket_tokens >= 1:
            self._bucket_tokens -= 1
            return None
        self.stats.requests_limited += 1
        return (1 - self._bucket_tokens) / rate

    async def delay_response(self, request_start: float) -> None:
        """Added latency: the response may not start before `request_start + latency_s`."""
        if self.spec.latency_s > 0:
            await sleep_until(request_start + self.spec.latency_s)

    # ------------------------------------------------------------------ transfers
    def transfer(self) -> Transfer:
        return Transfer(self)

    def _rates(self) -> tuple[float | None, float | None]:
        eff = self.spec.efficiency(max(1, self.active))
        conn = self.spec.bandwidth_bytes_per_s
        egress = self.spec.egress_bandwidth_bytes_per_s
        return (conn * eff if conn else None, egress * eff if egress else None)

    def slice_bytes(self) -> int:
        conn, egress = self._rates()
        if conn is None and egress is None:
            return UNSHAPED_SLICE_BYTES
        rate = min(r for r in (conn, egress) if r is not None)
        return int(min(MAX_SLICE_BYTES, max(MIN_SLICE_BYTES, rate * SLICE_S)))

    def _reserve(self, t: Transfer, nbytes: int) -> float:
        """Reserve `nbytes` on the transfer's and the egress clock; return the deadline to send them at."""
        now = self.now()
        conn, egress = self._rates()
        conn_start = max(now - SLACK_S, t.free_at) if conn else -math.inf
        egress_start = max(now - SLACK_S, self._egress_free_at) if egress else -math.inf
        start = max(conn_start, egress_start)
        if egress:
            self._egress_free_at = egress_start + nbytes / egress
        end = max(start + nbytes / conn if conn else start, self._egress_free_at if egress else start)
        t.free_at = end
        t.bytes_paced += nbytes
        self.stats.bytes_paced += nbytes
        return end


class Transfer:
    """One response body going out over the link (async context manager: counts as active, holds a slot)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.free_at = -math.inf
        self.bytes_paced = 0
        self.started_at: float | None = None

    async def __aenter__(self) -> Transfer:
        if self.link._sem is not None:
            await self.link._sem.acquire()
        self.open()
        return self

    def open(self) -> None:
        """Start the transfer's clock now; an idle egress starts now too (no burst from idle time)."""
        link = self.link
        link.stats.transfers_started += 1
        link.stats.transfers_active += 1
        self.started_at = link.now()
        self.free_at = self.started_at
        link._egress_free_at = max(link._egress_free_at, self.started_at)

    def close(self) -> None:
        self.link.stats.transfers_active -= 1

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        if self.link._sem is not None:
            self.link._sem.release()

    @property
    def shaped(self) -> bool:
        return self.link.spec.shaped

    def slice_bytes(self) -> int:
        return self.link.slice_bytes()

    @property
    def scheduled_duration_s(self) -> float:
        """Time from the start of the transfer to the deadline of its last slice (scheduler accounting)."""
        return 0.0 if self.started_at is None else max(0.0, self.free_at - self.started_at)

    async def pace(self, nbytes: int) -> None:
        """Wait until `nbytes` more may be sent (no-op when the link is unshaped)."""
        if not self.shaped or nbytes <= 0:
            return
        await sleep_until(self.link._reserve(self, nbytes))


COARSE_MARGIN_S = 0.0015  # the loop's own timers may wake up to 1 ms late: the timer thread does the rest
PRECISE_MIN_S = 20e-6  # shorter waits are not worth a thread hop


@dataclass(order=True)
class _Wakeup:
    deadline: float
    seq: int
    loop: asyncio.AbstractEventLoop = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class PreciseTimer:
    """Resolves futures at `time.monotonic()` deadlines from one daemon thread (started on first use)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Wakeup] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def wake_at(self, deadline: float, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, _Wakeup(deadline, next(self._seq), loop, fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="registry_mock-timer", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0].deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                w = heapq.heappop(self._heap)
                if not w.future.done():
                    try:
                        w.loop.call_soon_threadsafe(_resolve, w.future)
                    except RuntimeError:  # the loop was closed meanwhile
                        pass


_TIMER = PreciseTimer()


async def sleep_until(deadline: float) -> None:
    """Sleep until `deadline` (loop.time() clock) with sub-millisecond precision."""
    loop = asyncio.get_running_loop()
    delay = deadline - loop.time()
    if preciseloop.is_precise(loop):
        if delay > PRECISE_MIN_S:
            await asyncio.sleep(delay)
        elif delay <= 0:
            await asyncio.sleep(0)  # behind schedule: still let the other transfers have a turn
        # else: within the pacing slack; waking the loop for it costs more than it is worth
        return
    if delay > COARSE_MARGIN_S + 0.0005:
        await asyncio.sleep(delay - COARSE_MARGIN_S)
        delay = deadline - loop.time()
    if delay <= 0:
        return
    if delay < PRECISE_MIN_S:
        await asyncio.sleep(0)  # keep the yield point; 20 us early is within the pacing slack
        return
    if not _monotonic_loop(loop):
        await asyncio.sleep(delay)
        return
    fut: asyncio.Future[None] = loop.create_future()
    _TIMER.wake_at(deadline, loop, fut)
    await fut


def _monotonic_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """True when the loop's clock is time.monotonic (asyncio's default), which the timer thread uses."""
    return abs(loop.time() - time.monotonic()) < 0.001
