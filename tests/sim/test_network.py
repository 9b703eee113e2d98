"""The fluid network and the registry request path: analytic cases, exact logs, properties."""

from __future__ import annotations

import math

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.network import Network
from sim.registry import RateLimitedError, Registry, efficiency_curve
from startup.scenario import LinearOverload, NoOverload, RateLimitSpec, TableOverload


def make_registry(env: simpy.Environment, net: Network, **kw: object) -> Registry:
    args: dict[str, object] = dict(
        name="r",
        egress_bytes_per_s=1e9,
        service_time_s=0.0,
        max_concurrent=0,
        overload=NoOverload(),
        rate_limit=RateLimitSpec(),
        request_overhead_s=0.0,
    )
    args.update(kw)
    return Registry(env, net, **args)  # type: ignore[arg-type]


def test_one_transfer_takes_rtt_plus_size_over_bandwidth() -> None:
    env = simpy.Environment()
    net = Network(env)
    reg = make_registry(env, net)
    link = net.link("n0", 1e6, reg.endpoint)
    log: list[tuple[str, float]] = []

    def get():  # type: ignore[no-untyped-def]
        log.append(("start", env.now))
        yield from reg.request(link, 0.05, 2_000_000)
        log.append(("done", env.now))

    env.process(get())
    env.run()
    assert log == [("start", 0.0), ("done", pytest.approx(0.05 + 2.0, abs=1e-12))]
    assert reg.stats.requests == 1 and reg.stats.bytes == 2_000_000


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_equal_transfers_on_one_bottleneck_finish_together(n: int) -> None:
    env = simpy.Environment()
    net = Network(env)
    ep = net.endpoint("r", 1e6)
    links = [net.link(f"n{i}", 1e9, ep) for i in range(n)]
    done: list[float] = []

    def flow(link):  # type: ignore[no-untyped-def]
        yield net.transfer(link, 500_000)
        done.append(env.now)

    for link in links:
        env.process(flow(link))
    env.run()
    assert done == [pytest.approx(n * 0.5, rel=1e-12)] * n
    assert ep.bytes_delivered == pytest.approx(n * 500_000)


def test_exact_event_log_for_a_small_case() -> None:
    """Registry 100 B/s; node a link 10 B/s; node b link 1000 B/s with two flows (90 B, 900 B)."""
    env = simpy.Environment()
    net = Network(env)
    ep = net.endpoint("r", 100.0)
    a, b = net.link("a", 10.0, ep), net.link("b", 1000.0, ep)
    log: list[tuple[str, float]] = []

    def flow(name, link, size, delay=0.0):  # type: ignore[no-untyped-def]
        if delay:
            yield env.timeout(delay)
        yield net.transfer(link, size)
        log.append((name, env.now))

    env.process(flow("a100", a, 100))
    env.process(flow("b900", b, 900))
    env.process(flow("b90", b, 90))
    env.run()
    # a is link-bound at 10; b's two flows share 90 -> 45 each: b90 ends at 2.0; then b900 gets 90
    # until a ends at 10.0 (720 more, 90 left), then 100 alone: 10.9
    assert [(n, round(t, 9)) for n, t in log] == [("b90", 2.0), ("a100", 10.0), ("b900", 10.9)]


def test_cohort_weight_counts_at_the_registry() -> None:
    env = simpy.Environment()
    net = Network(env)
    ep = net.endpoint("r", 1000.0)
    cohort = net.link("c", 1e9, ep, weight=10)  # 10 identical nodes
    single = net.link("s", 1e9, ep)
    done: dict[str, float] = {}

    def flow(name, link):  # type: ignore[no-untyped-def]
        yield net.transfer(link, 100)
        done[name] = env.now

    env.process(flow("c", cohort))
    env.process(flow("s", single))
    env.run()
    # 11 flows share 1000 B/s -> each gets 1000/11
    assert done["c"] == pytest.approx(1.1) and done["s"] == pytest.approx(1.1)


flows = st.lists(st.tuples(st.integers(0, 5), st.floats(0, 3), st.integers(1, 5000)), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(flows=flows, caps=st.lists(st.floats(10, 5000), min_size=6, max_size=6), egress=st.floats(50, 20000))
def test_utilisation_within_capacity_and_bytes_conserved(flows, caps, egress) -> None:  # type: ignore[no-untyped-def]
    env = simpy.Environment()
    net = Network(env)
    ep = net.endpoint("r", egress)
    links = [net.link(f"n{i}", caps[i], ep) for i in range(6)]
    samples: list[tuple[float, float]] = []
    ep.on_rate = lambda t0, t1, rate: samples.append((t1 - t0, rate))
    delivered: list[float] = []

    def flow(i, delay, size):  # type: ignore[no-untyped-def]
        yield env.timeout(delay)
        got = yield net.transfer(links[i], size)
        delivered.append(got)

    for i, d, s in flows:
        env.process(flow(i, d, s))
    env.run()
    assert len(delivered) == len(flows)
    assert sum(delivered) == sum(s for _, _, s in flows)
    assert ep.bytes_delivered == pytest.approx(sum(s for _, _, s in flows), rel=1e-6)
    for _, rate in samples:
        assert 0 <= rate <= egress * (1 + 1e-9)
    assert ep.peak_rate <= egress * (1 + 1e-9)
    # the fluid schedule can never beat the registry's capacity
    assert env.now >= sum(s for _, _, s in flows) / egress - 1e-9


def test_max_min_fair_share_levels() -> None:
    """Links of 10, 20, 1000 B/s with one flow each on a 100 B/s registry: 10, 20, 70."""
    env = simpy.Environment()
    net = Network(env)
    ep = net.endpoint("r", 100.0)
    links = [net.link(f"n{c}", c, ep) for c in (10.0, 20.0, 1000.0)]
    for link in links:
        net.transfer(link, 1e6)
    env.run(until=1.0)
    assert ep.rate == pytest.approx(100.0)
    assert ep.r == pytest.approx(70.0)
    assert [link.bound for link in links] == ["L", "L", "R"]


def test_overload_curves() -> None:
    assert efficiency_curve(NoOverload())(10_000) == 1.0
    lin = efficiency_curve(LinearOverload(knee_transfers=10, slope_per_transfer=0.1, min_efficiency=0.5))
    assert lin(10) == 1.0 and lin(12) == pytest.approx(0.8) and lin(100) == 0.5
    tab = efficiency_curve(TableOverload(transfers=(1, 11), efficiency=(1.0, 0.5)))
    assert tab(0) == 1.0 and tab(6) == pytest.approx(0.75) and tab(50) == 0.5


def test_overloaded_registry_is_slower() -> None:
    def finish(overload) -> float:  # type: ignore[no-untyped-def]
        env = simpy.Environment()
        net = Network(env)
        reg = make_registry(env, net, egress_bytes_per_s=1000.0, overload=overload)
        for i in range(20):
            link = net.link(f"n{i}", 1e9, reg.endpoint)
            env.process(reg.request(link, 0.0, 100))
        env.run()
        return env.now

    assert finish(NoOverload()) == pytest.approx(2.0)
    assert finish(
        LinearOverload(knee_transfers=10, slope_per_transfer=0.05, min_efficiency=0.5)
    ) == pytest.approx(4.0)


def test_rate_limit_answers_429_then_retries_then_fails() -> None:
    env = simpy.Environment()
    net = Network(env)
    reg = make_registry(
        env, net, rate_limit=RateLimitSpec(requests_per_s=1.0, burst=1, retry_after_s=1.0, max_retries=1)
    )
    link = net.link("n", 1e9, reg.endpoint)
    out: list[object] = []

    def get(tag):  # type: ignore[no-untyped-def]
        try:
            yield from reg.request(link, 0.1, 10)
            out.append((tag, round(env.now, 6)))
        except RateLimitedError as e:
            out.append((tag, str(e)))

    for tag in ("a", "b", "c"):
        env.process(get(tag))
    env.run()
    assert out[0] == ("a", 0.1)
    # b and c are refused at t=0 and retry after one RTT + Retry-After (1.1 s): one token has
    # accrued, b gets it (done at 1.2), c is refused again and gives up (max_retries=1)
    got = dict(out)  # type: ignore[arg-type]
    assert got["b"] == 1.2
    assert "429 Too Many Requests after 1 retries" in str(got["c"])
    assert reg.stats.throttled == 3


def test_concurrency_limit_queues_requests() -> None:
    env = simpy.Environment()
    net = Network(env)
    reg = make_registry(env, net, max_concurrent=1, egress_bytes_per_s=100.0)
    ends: list[float] = []

    def get():  # type: ignore[no-untyped-def]
        link = net.link("n", 1e9, reg.endpoint)
        yield from reg.request(link, 0.0, 100)
        ends.append(env.now)

    for _ in range(3):
        env.process(get())
    env.run()
    assert ends == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(3.0)]
    assert math.isclose(reg.endpoint.peak_rate, 100.0)


def progressive_filling(
    caps: list[float], weights: list[int], counts: list[int], egress: float
) -> list[float]:
    """Reference max-min fair per-flow rate of each link, by raising all unfrozen flows together."""
    rate = [0.0] * len(caps)
    frozen = [c == 0 for c in counts]
    while not all(frozen):
        used = sum(w * n * r for w, n, r in zip(weights, counts, rate, strict=True))
        active = [i for i in range(len(caps)) if not frozen[i]]
        # the largest common increment before a link or the registry saturates
        inc_reg = (egress - used) / sum(weights[i] * counts[i] for i in active)
        inc_links = min(caps[i] / counts[i] - rate[i] for i in active)
        inc = min(inc_reg, inc_links)
        for i in active:
            rate[i] += inc
        if inc_reg <= inc_links:
            break  # registry saturated: every active flow is frozen at this level
        for i in active:
            if caps[i] / counts[i] - rate[i] <= 1e-12 * caps[i]:
                frozen[i] = True
    return rate


@settings(max_examples=80, deadline=None)
@given(
    links=st.lists(
        st.tuples(st.floats(1, 1000), st.integers(1, 5), st.integers(0, 4)), min_size=1, max_size=8
    ),
    egress=st.floats(1, 5000),
)
def test_allocation_is_max_min_fair(links, egress) -> None:  # type: ignore[no-untyped-def]
    env = simpy.Environment()
    net = Network(env)
    ep = net.endpoint("r", egress)
    objs = []
    for cap, weight, count in links:
        link = net.link("n", cap, ep, weight=weight)
        objs.append(link)
        for _ in range(count):
            net.transfer(link, 1e12)
    env.run(until=1e-3)
    want = progressive_filling(
        [c for c, _, _ in links], [w for _, w, _ in links], [n for _, _, n in links], egress
    )
    for (cap, _, count), link, expected in zip(links, objs, want, strict=True):
        if count == 0:
            continue
        got = link.theta if link.bound == "L" else ep.r
        assert got == pytest.approx(expected, rel=1e-9), (link.bound, cap, count)
