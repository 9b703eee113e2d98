"""The lazy store's CPU (verify of fetched units, TOC parsing) and a shared emulation host
(`cluster.host_cores`): analytic timelines."""

from __future__ import annotations

import dataclasses

import pytest

from sim.run import run_scenario
from sim.scenarios import build_images, build_world
from sim.workload import compile_trace
from startup.modes import PullMode
from startup.scenario import ClusterSpec, EmptyWorkload, ScenarioError
from startup.trace import Op, Trace, TraceOp
from tests.sim.conftest import ZERO_PARAMS, small_scenario

VERIFY = dataclasses.replace(ZERO_PARAMS, lazy_verify_s_per_byte=20e-9, lazy_verify_s_per_unit=50e-6,
                             toc_parse_s_per_byte=0.5e-6)


def test_lazy_start_pays_toc_parse_and_verify_of_the_fetched_units_instead_of_decode_on_read() -> None:
    s = small_scenario(PullMode.LAZY, reads=0, layers=1)
    image = build_images(s)["img"]
    path, size = image.regular_files()[5]
    think = 0.003
    trace = Trace.of([TraceOp(op=Op.READ, path=path, offset=0, length=size, think_s=think),
                      TraceOp(op=Op.READ, path=path, offset=0, length=size, think_s=0.0)])
    world = build_world(dataclasses.replace(s, workload=EmptyWorkload()), VERIFY)
    world.ctx.traces["img"] = compile_trace(trace, world.ctx.images["img"], VERIFY, "block", 50_000)
    world.env.run()
    ((node, pod),) = world.pods
    layer = world.ctx.images["img"].layers[0]
    step = world.ctx.traces["img"].steps[0]
    rtt, bw = 0.01, 10e6
    resolved = (rtt + 2000 / bw) + (rtt + 6000 / bw)
    toc_parse = layer.toc_bytes * VERIFY.toc_parse_s_per_byte
    pulled = resolved + rtt + layer.toc_bytes / bw + toc_parse
    nbytes = sum(layer.units("block", 50_000).lengths[u] for u in step.units)
    verify = (nbytes * layer.expansion * VERIFY.lazy_verify_s_per_byte
              + len(step.units) * VERIFY.lazy_verify_s_per_unit)
    # the second read hits the verified cache: no decode on read, no second verify
    ready = pulled + think + rtt + nbytes / bw + verify
    assert (pod.pulled_s, pod.ready_s) == pytest.approx((pulled, ready), rel=1e-12)
    assert node.cpu_s == pytest.approx(toc_parse + verify, rel=1e-12)
    assert (pod.cache_misses, pod.cache_hits) == (1, 1)


def test_partial_pull_parses_the_toc_on_a_core() -> None:
    s = small_scenario(PullMode.PARTIAL, reads=0, layers=1)
    toc_only = dataclasses.replace(ZERO_PARAMS, toc_parse_s_per_byte=1e-6)
    (base,) = run_scenario(s, params=ZERO_PARAMS).records
    (r,) = run_scenario(s, params=toc_only).records
    layer = build_images(s)["img"].layers[0]
    assert r.pulled_s - base.pulled_s == pytest.approx(layer.toc_bytes * 1e-6, rel=1e-9)


def _cpu_bound_partial(host_cores: int, cohorts: bool = True):  # type: ignore[no-untyped-def]
    s = small_scenario(PullMode.PARTIAL, reads=0, layers=1, nodes=2, replicas=2)
    s = dataclasses.replace(s, cluster=dataclasses.replace(s.cluster, host_cores=host_cores, cores=4),
                            sim=dataclasses.replace(s.sim, cohorts=cohorts))
    slow = dataclasses.replace(ZERO_PARAMS, zstd_decode_bytes_per_s=1e6, extract_bytes_per_s=2e6)
    layer = build_images(s)["img"].layers[0]
    cpu = (int(layer.chunk_size[~layer.chunk_zero].sum()) / slow.zstd_decode_bytes_per_s
           + layer.file_bytes / slow.extract_bytes_per_s)
    return run_scenario(s, params=slow), cpu


def test_nodes_sharing_a_one_core_host_share_its_time() -> None:
    own, cpu = _cpu_bound_partial(0, cohorts=False)
    shared, _ = _cpu_bound_partial(1)
    two, _ = _cpu_bound_partial(2)
    assert cpu > 1.0  # CPU-bound: the network part is ~0.2 s
    a, b = sorted(r.pulled_s for r in own.records)
    assert a == pytest.approx(b, rel=1e-12)
    network = a - cpu
    # one shared core, processor-shared as by the OS: both CPU phases run at half speed
    assert sorted(r.pulled_s for r in shared.records) == pytest.approx([network + 2 * cpu] * 2, rel=1e-9)
    # as many host cores as nodes: nobody waits (each node uses at most one core)
    assert sorted(r.pulled_s for r in two.records) == pytest.approx([a, b], rel=1e-12)


def test_a_shared_host_turns_cohorts_off_and_own_cores_keep_them() -> None:
    own, _ = _cpu_bound_partial(0)
    shared, _ = _cpu_bound_partial(1)
    assert own.result.cohorts == 1
    assert shared.result.cohorts == 2
    assert any("host_cores" in n for n in shared.result.notes)


def test_host_cores_must_not_be_negative() -> None:
    with pytest.raises(ScenarioError, match=r"cluster\.host_cores"):
        ClusterSpec(host_cores=-1)


def _cpu_bound_full(host_cores: int):  # type: ignore[no-untyped-def]
    s = small_scenario(PullMode.FULL, reads=0, layers=1, nodes=2, replicas=2)
    s = dataclasses.replace(s, cluster=dataclasses.replace(s.cluster, host_cores=host_cores, cores=4),
                            sim=dataclasses.replace(s.sim, cohorts=False))
    slow = dataclasses.replace(ZERO_PARAMS, zstd_decode_bytes_per_s=1e6, extract_bytes_per_s=2e6)
    layer = build_images(s)["img"].layers[0]
    cpu = layer.uncompressed_bytes / slow.zstd_decode_bytes_per_s + layer.uncompressed_bytes / 2e6
    return run_scenario(s, params=slow), cpu


def test_full_pull_extraction_holds_a_shared_core_while_it_downloads() -> None:
    own, cpu = _cpu_bound_full(0)
    shared, _ = _cpu_bound_full(1)
    a, b = sorted(r.pulled_s for r in own.records)
    assert a == pytest.approx(b, rel=1e-12)
    assert cpu > 10 * (a - cpu)  # CPU-bound: extraction starts with the download and outlasts it
    # one shared core: both extractions run while downloading, at half speed each, so both end one
    # whole extraction later than on their own cores
    assert sorted(r.pulled_s for r in shared.records) == pytest.approx([a + cpu] * 2, rel=1e-9)


def test_on_a_shared_host_the_request_overhead_is_cpu_on_its_cores() -> None:
    s = small_scenario(PullMode.LAZY, reads=0, layers=1, nodes=2, replicas=2)
    s = dataclasses.replace(s, workload=EmptyWorkload(), sim=dataclasses.replace(s.sim, cohorts=False))
    overhead = dataclasses.replace(ZERO_PARAMS, request_overhead_s=0.5)  # dwarfs the network part
    own = sorted(r.pulled_s for r in run_scenario(s, params=overhead).records)
    one_core = dataclasses.replace(s, cluster=dataclasses.replace(s.cluster, host_cores=1))
    shared = sorted(r.pulled_s for r in run_scenario(one_core, params=overhead).records)
    requests = 3  # manifest, config, the layer's TOC
    assert own[0] == pytest.approx(own[1], rel=1e-12)
    # what each node spent on the host is its requests' overhead (comparable with a node process's CPU)
    cpu = run_scenario(one_core, params=overhead).node_cpu
    assert [c.compute_s for c in cpu] == pytest.approx([requests * 0.5] * 2, rel=1e-12)
    # the two nodes' requests share the one core: each request's overhead takes twice as long
    assert [t - o for t, o in zip(shared, own, strict=True)] == pytest.approx([requests * 0.5] * 2, rel=1e-6)


def test_on_a_shared_host_trace_operations_are_cpu_shared_by_the_nodes() -> None:
    s = small_scenario(PullMode.LAZY, reads=30, layers=1, nodes=2, replicas=2)
    s = dataclasses.replace(s, sim=dataclasses.replace(s.sim, cohorts=False))
    ops = dataclasses.replace(ZERO_PARAMS, fuse_op_s=0.05)  # dwarfs everything else
    own = run_scenario(s, params=ops).records
    one_core = dataclasses.replace(s, cluster=dataclasses.replace(s.cluster, host_cores=1))
    shared = run_scenario(one_core, params=ops).records
    replay = {r.pod: r.ready_s - r.created_s for r in own}
    assert all(r.fuse_ops > 20 for r in own)
    # both nodes replay at once on one core: every operation's CPU takes twice as long
    for r in shared:
        assert r.ready_s - r.created_s == pytest.approx(2 * replay[r.pod], rel=0.05)
