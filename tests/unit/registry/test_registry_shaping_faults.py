"""The link scheduler's accounting (fake clock, no wall-clock asserts), the rate limiter, fault selection."""

from __future__ import annotations

import asyncio

import pytest

from registry_mock.config import FaultKind, FaultRule, FaultSpec, LinkSpec
from registry_mock.faults import FaultInjector
from registry_mock.shaping import Link


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _schedule(link: Link, transfers: int, nbytes: int, clock: FakeClock) -> list[float]:
    """Reserve `nbytes` per transfer in round-robin slices like the pacer; return each last deadline."""
    ts = [link.transfer() for _ in range(transfers)]
    for t in ts:
        t.open()
    left = [nbytes] * transfers
    while any(left):
        for i, t in enumerate(ts):
            if left[i]:
                n = min(link.slice_bytes(), left[i])
                link._reserve(t, n)
                left[i] -= n
    return [t.free_at - clock.t for t in ts]


@pytest.mark.parametrize("rate", [125_000.0, 1.25e6, 12.5e6, 125e6])  # 1, 10, 100, 1000 Mbit/s
def test_single_transfer_schedule_matches_rate(rate: float) -> None:
    clock = FakeClock()
    link = Link(LinkSpec(bandwidth_bytes_per_s=rate), clock=clock)
    size = int(rate * 2)
    (dur,) = _schedule(link, 1, size, clock)
    assert dur == pytest.approx(size / rate, rel=1e-9)


def test_egress_is_shared_fairly_and_work_conserving() -> None:
    clock = FakeClock()
    rate = 10e6
    link = Link(LinkSpec(egress_bandwidth_bytes_per_s=rate), clock=clock)
    durs = _schedule(link, 4, 1_000_000, clock)
    total = 4 * 1_000_000 / rate
    # all four finish together (fair) and the link never idles (work conserving)
    assert max(durs) == pytest.approx(total, rel=1e-9)
    assert min(durs) > total * 0.95


def test_per_connection_and_egress_combine() -> None:
    clock = FakeClock()
    link = Link(LinkSpec(bandwidth_bytes_per_s=1e6, egress_bandwidth_bytes_per_s=10e6), clock=clock)
    durs = _schedule(link, 2, 1_000_000, clock)
    assert all(d == pytest.approx(1.0, rel=0.01) for d in durs)  # per-connection cap binds


def test_overload_scales_rates() -> None:
    clock = FakeClock()
    curve = ((1, 1.0), (2, 0.5))
    link = Link(LinkSpec(egress_bandwidth_bytes_per_s=1e6, overload_curve=curve), clock=clock)
    durs = _schedule(link, 2, 500_000, clock)
    assert max(durs) == pytest.approx(2.0, rel=1e-6)  # 1 MB at half efficiency


def test_rate_limit_token_bucket() -> None:
    clock = FakeClock()
    link = Link(LinkSpec(rate_limit_per_s=2, rate_burst=2), clock=clock)
    assert link.admit() is None and link.admit() is None
    retry = link.admit()
    assert retry == pytest.approx(0.5)
    clock.t += 0.5
    assert link.admit() is None
    assert link.stats.requests_limited == 1


async def test_pace_uses_absolute_deadlines() -> None:
    link = Link(LinkSpec(bandwidth_bytes_per_s=1e6))
    async with link.transfer() as t:
        for _ in range(10):
            await t.pace(2000)
        assert t.bytes_paced == 20_000
        assert t.scheduled_duration_s == pytest.approx(0.02, rel=1e-6)
    assert link.active == 0


async def test_concurrency_limit_queues() -> None:
    link = Link(LinkSpec(max_concurrent_transfers=1))
    first = link.transfer()
    await first.__aenter__()
    second = asyncio.ensure_future(link.transfer().__aenter__())
    await asyncio.sleep(0)
    assert not second.done() and link.active == 1
    await first.__aexit__(None, None, None)
    await second
    assert link.active == 1


def test_faults_are_deterministic_and_selective() -> None:
    spec = FaultSpec(
        seed=5,
        rules=(
            FaultRule(kind=FaultKind.ERROR_5XX, fraction=0.3, repo="ns/*"),
            FaultRule(kind=FaultKind.CORRUPT, digest="sha256:ab", corrupt_bytes=3),
        ),
    )

    def decisions() -> list[bool]:
        inj = FaultInjector(spec)
        return [
            FaultKind.ERROR_5XX in inj.select("GET", "/v2/ns/a/blobs/x", "ns/a", None) for _ in range(200)
        ]

    a, b = decisions(), decisions()
    assert a == b
    assert 30 < sum(a) < 90
    inj = FaultInjector(spec)
    assert not inj.select("GET", "/p", "other/a", None)
    sel = inj.select("GET", "/p", "other/a", "sha256:abcd")
    assert FaultKind.CORRUPT in sel
    pos = sel.corrupt_positions(1000)
    assert len(pos) == 3 and pos == sel.corrupt_positions(1000)
