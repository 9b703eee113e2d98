"""Pull strategies end to end: analytic cases, conservation, properties, toggle, real TOCs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.run import run_scenario
from sim.scenarios import build_images
from sim.strategies import EXTRACT_SLICES, merge_missing
from startup.modes import PullMode
from startup.scenario import (
    ClusterSpec,
    EmptyWorkload,
    NoPrefetch,
    OciImageSpec,
    PoissonArrivals,
    PullSpec,
    RateLimitSpec,
    RegistrySpec,
    RolloutArrivals,
    SyntheticImageSpec,
    SyntheticLayerSpec,
    ToggleSpec,
)
from tests.sim.conftest import ZERO_PARAMS, small_scenario

TESTDATA = Path("/work/shared/testdata")


@pytest.mark.parametrize(("fmt", "per_layer"), [("zstd:chunked", 1), ("estargz", 2)])
def test_pure_lazy_empty_trace_costs_one_toc_fetch_per_layer(fmt: str, per_layer: int) -> None:
    s = small_scenario(PullMode.LAZY, layers=3, reads=0, fmt=fmt)
    run = run_scenario(s, params=ZERO_PARAMS)
    (r,) = run.records
    image = build_images(s)["img"]
    assert r.ok and r.requests == 2 + per_layer * 3
    assert r.bytes_toc == sum(layer.toc_bytes for layer in image.layers)
    assert r.bytes_on_demand == r.bytes_layers == r.bytes_background == 0
    assert r.ready_s == r.created_s == r.pulled_s  # nothing to read, create costs 0 here


def test_full_pull_of_one_layer_is_analytic() -> None:
    s = small_scenario(PullMode.FULL, layers=1, reads=0)
    run = run_scenario(s, params=ZERO_PARAMS)
    (r,) = run.records
    layer = build_images(s)["img"].layers[0]
    rtt, bw = 0.01, 10e6
    resolve = 2 * rtt + (s.registry.manifest_bytes + s.registry.config_bytes) / bw
    cpu = (
        layer.uncompressed_bytes / ZERO_PARAMS.zstd_decode_bytes_per_s
        + layer.uncompressed_bytes / ZERO_PARAMS.extract_bytes_per_s
    )
    download = rtt + layer.blob_size / bw
    assert r.resolved_s == pytest.approx(resolve, rel=1e-9)
    # extraction runs while the blob arrives (containers/image), slice i once its bytes can be
    # there: applied when both are done
    assert r.pulled_s == pytest.approx(resolve + max(download, _sliced(cpu, layer.blob_size / bw)), rel=1e-9)
    assert r.bytes_layers == layer.blob_size and r.requests == 3
    slow = dataclasses.replace(ZERO_PARAMS, extract_bytes_per_s=layer.uncompressed_bytes / (3 * download))
    (r,) = run_scenario(s, params=slow).records
    slow_cpu = layer.uncompressed_bytes / slow.zstd_decode_bytes_per_s + 3 * download
    assert slow_cpu > download
    assert r.pulled_s == pytest.approx(resolve + _sliced(slow_cpu, layer.blob_size / bw), rel=1e-9)


def _sliced(cpu_s: float, arrival_s: float) -> float:
    """When a sliced extraction ends, from its start: slice i starts once (i + 1)/k of the bytes
    can be there and the slice before it is done."""
    t = 0.0
    for i in range(EXTRACT_SLICES):
        t = max(t, arrival_s * (i + 1) / EXTRACT_SLICES) + cpu_s / EXTRACT_SLICES
    return t


@pytest.mark.parametrize("mode", list(PullMode))
def test_bytes_delivered_equal_bytes_requested(mode: PullMode) -> None:
    s = small_scenario(mode, nodes=4, replicas=6, background=True, reads=40)
    run = run_scenario(s, params=ZERO_PARAMS)
    assert not run.result.error
    assert sum(r.bytes_fetched for r in run.records) == run.result.bytes_from_registry
    total_series = sum(rate * s.sim.egress_sample_s for series in run.egress for _, rate in series.rows())
    assert total_series == pytest.approx(run.result.bytes_from_registry, rel=1e-6)


def test_every_started_pod_ends_ready_or_with_an_error() -> None:
    cases = [
        small_scenario(PullMode.LAZY, nodes=3, replicas=9, background=True),
        small_scenario(
            PullMode.FULL,
            nodes=2,
            replicas=4,
            registry=RegistrySpec(
                rate_limit=RateLimitSpec(requests_per_s=1, burst=1, retry_after_s=0.1, max_retries=1)
            ),
        ),
        small_scenario(PullMode.LAZY, nodes=2, replicas=4, toggle=ToggleSpec(at_s=0.05, reboot_s=1.0)),
    ]
    for s in cases:
        run = run_scenario(s, params=ZERO_PARAMS)
        assert run.records
        for r in run.records:
            assert r.ok != bool(r.error), r
    rate_limited = run_scenario(cases[1], params=ZERO_PARAMS)
    assert any("429" in r.error for r in rate_limited.records)


def test_partial_pull_reuses_chunks_of_a_similar_layer() -> None:
    v1 = SyntheticImageSpec(
        name="v1", layers=(SyntheticLayerSpec(name="a", files=50, total_bytes=3_000_000),)
    )
    v2 = SyntheticImageSpec(
        name="v2",
        layers=(
            SyntheticLayerSpec(
                name="b", files=50, total_bytes=3_000_000, derived_from="a", changed_fraction=0.2
            ),
        ),
    )
    s = small_scenario(
        PullMode.PARTIAL,
        images=(v1, v2),
        replicas=2,
        workload=EmptyWorkload(),
        arrivals=RolloutArrivals(replicas=2, stagger_s=5.0),
    )
    first, second = run_scenario(s, params=ZERO_PARAMS).records
    assert first.bytes_reused == 0 and second.bytes_reused > 0
    assert second.bytes_layers < 0.5 * first.bytes_layers
    full = run_scenario(dataclasses.replace(s, mode=PullMode.FULL), params=ZERO_PARAMS).records
    assert full[1].bytes_layers == full[0].bytes_layers  # classic pulls reuse nothing


def test_merge_missing_follows_c_storage() -> None:
    starts = np.array([0, 100, 1200, 5000, 9000])
    stops = np.array([50, 1000, 1300, 6000, 9100])
    # gaps: 50 (merge), 200 (merge), 3700, 3000 -> 3 ranges: [0,1300) [5000,6000) [9000,9100)
    assert merge_missing(starts, stops, 1024, 1024) == (1300 + 1000 + 100, 3)
    # capped at 2 ranges: the smallest surviving gap (3000) is downloaded too
    assert merge_missing(starts, stops, 1024, 2) == (1300 + 1000 + 100 + 3000, 2)
    assert merge_missing(starts[:0], stops[:0], 1024, 1024) == (0, 0)


def test_toggle_wipes_lazily_pulled_images_and_pods_re_pull() -> None:
    s = small_scenario(
        PullMode.LAZY,
        nodes=2,
        replicas=2,
        reads=10,
        toggle=ToggleSpec(at_s=5.0, max_unavailable=1, drain_s=1.0, reboot_s=10.0, to_mode=PullMode.FULL),
    )
    recs = run_scenario(s, params=ZERO_PARAMS).records
    restarted = [r for r in recs if r.pod.endswith("-r")]
    image = build_images(s)["img"]
    assert len(restarted) == 2
    assert all(r.ok and r.bytes_layers == image.blob_bytes for r in restarted)
    # node-00000 reboots first (5 + 1 + 10), node-00001 after it
    assert sorted(r.submitted_s for r in restarted) == [pytest.approx(16.0), pytest.approx(27.0)]
    back = dataclasses.replace(
        s, mode=PullMode.FULL, toggle=dataclasses.replace(s.toggle, to_mode=PullMode.LAZY)
    )
    recs = run_scenario(back, params=ZERO_PARAMS).records
    assert all(r.bytes_fetched == 0 for r in recs if r.pod.endswith("-r"))  # full images survive the wipe


def test_serialized_image_pulls_wait_for_each_other() -> None:
    imgs = tuple(
        SyntheticImageSpec(
            name=f"i{k}", layers=(SyntheticLayerSpec(name=f"L{k}", files=20, total_bytes=2_000_000),)
        )
        for k in range(2)
    )

    def pulled(serial: bool) -> list[float]:
        s = small_scenario(
            PullMode.FULL,
            images=imgs,
            replicas=2,
            workload=EmptyWorkload(),
            cluster=ClusterSpec(
                nodes=1, link_bandwidth_bytes_per_s=10e6, rtt_s=0.01, serialize_image_pulls=serial
            ),
        )
        return sorted(r.pulled_s for r in run_scenario(s, params=ZERO_PARAMS).records)

    serial, parallel = pulled(True), pulled(False)
    assert serial[1] > parallel[1]
    assert serial[1] == pytest.approx(2 * serial[0], rel=0.05)


def test_cohorts_are_exact() -> None:
    s = small_scenario(PullMode.LAZY, nodes=6, replicas=12, background=True)
    a = run_scenario(s, params=ZERO_PARAMS)
    b = run_scenario(
        dataclasses.replace(s, sim=dataclasses.replace(s.sim, cohorts=False)), params=ZERO_PARAMS
    )
    assert a.result.cohorts == 1 and b.result.cohorts == 6
    key = [(r.pod, r.node, r.ready_s, r.bytes_fetched, r.requests) for r in a.records]
    assert key == [
        (r.pod, r.node, pytest.approx(r.ready_s, rel=1e-9), r.bytes_fetched, r.requests) for r in b.records
    ]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    reads=st.integers(0, 60),
    files=st.integers(1, 60),
    ws=st.floats(0.05, 1.0),
    granularity=st.sampled_from(["chunk", "block"]),
)
def test_lazy_never_moves_more_than_full_without_background(seed, reads, files, ws, granularity) -> None:  # type: ignore[no-untyped-def]
    s = small_scenario(
        PullMode.LAZY,
        files=files,
        reads=reads,
        seed=seed,
        pull=PullSpec(background_fetch=False, lazy_granularity=granularity),
    )
    s = (
        dataclasses.replace(s, workload=dataclasses.replace(s.workload, working_set_fraction=ws))
        if reads
        else s
    )
    lazy = run_scenario(s, params=ZERO_PARAMS).records[0]
    full = run_scenario(dataclasses.replace(s, mode=PullMode.FULL), params=ZERO_PARAMS).records[0]
    slack = 0 if granularity == "chunk" else 2 * s.pull.block_bytes  # the block holding the TOC start
    assert lazy.bytes_fetched <= full.bytes_fetched + slack


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    mode=st.sampled_from(list(PullMode)),
    base=st.floats(1e6, 50e6),
    factor=st.floats(1.0, 20.0),
    background=st.booleans(),
)
def test_more_registry_bandwidth_never_hurts_one_pod(seed, mode, base, factor, background) -> None:  # type: ignore[no-untyped-def]
    def ttr(egress: float) -> float:
        s = small_scenario(
            mode,
            seed=seed,
            background=background,
            registry=RegistrySpec(egress_bandwidth_bytes_per_s=egress, service_time_s=0.001),
        )
        (r,) = run_scenario(s, params=ZERO_PARAMS).records
        return r.time_to_ready_s

    assert ttr(base * factor) <= ttr(base) * (1 + 1e-9)


def _oci_layout(tmp: Path) -> Path:
    from imageformat.oci import Descriptor, OciLayout, new_config

    case = TESTDATA / "zstdchunked-b" / "edge"
    layout = OciLayout.create(tmp / "layout")
    digest, size = layout.write_blob((case / "layer.zst").read_bytes())
    ann = json.loads((case / "annotations.json").read_text())
    desc = Descriptor(
        media_type="application/vnd.oci.image.layer.v1.tar+zstd", digest=digest, size=size, annotations=ann
    )
    import hashlib

    diff_id = "sha256:" + hashlib.sha256((case / "source.tar").read_bytes()).hexdigest()
    layout.write_image(layers=[desc], config=new_config([diff_id]), tag="edge")
    return tmp / "layout"


def test_real_oci_image_has_exactly_the_toc_files(tmp_path: Path) -> None:
    if not (TESTDATA / "zstdchunked-b" / "edge" / "layer.zst").exists():
        pytest.skip("shared testdata not present")
    root = _oci_layout(tmp_path)
    s = small_scenario(
        PullMode.LAZY, reads=0, images=(OciImageSpec(name="edge", layout=str(root), tag="edge"),)
    )
    image = build_images(s)["edge"]
    (layer,) = image.layers
    assert layer.toc is not None
    assert set(layer.files) == {e.path for e in layer.toc.regular_files()}
    (r,) = run_scenario(s, params=ZERO_PARAMS).records
    assert r.ok and r.requests == 3
    assert r.bytes_toc == 453 + 374  # manifest-position and tarsplit-position lengths
    full = run_scenario(dataclasses.replace(s, mode=PullMode.FULL), params=ZERO_PARAMS).records[0]
    assert full.bytes_layers == (TESTDATA / "zstdchunked-b" / "edge" / "layer.zst").stat().st_size


def test_bad_image_is_a_recorded_error(tmp_path: Path) -> None:
    s = small_scenario(images=(OciImageSpec(name="x", layout=str(tmp_path / "missing")),))
    run = run_scenario(s, params=ZERO_PARAMS)
    assert run.records == [] and "missing" in run.result.error


def test_traces_and_schedule_match_the_emulator_conventions() -> None:
    """Same scenario -> same pod names, nodes, times and traces in both engines (row-for-row joins)."""
    import emulator.cluster as cluster
    from sim.scenarios import build_world

    imgs = tuple(
        SyntheticImageSpec(name=n, layers=(SyntheticLayerSpec(name=f"L-{n}", files=30, total_bytes=500_000),))
        for n in ("zeta", "alpha")
    )
    s = small_scenario(
        PullMode.LAZY, images=imgs, nodes=3, arrivals=PoissonArrivals(pods=7, rate_per_s=3.0, at_s=0.25)
    )
    world = build_world(s, ZERO_PARAMS)
    files = {name: img.regular_files() for name, img in world.ctx.images.items()}
    emulated = cluster.workload_traces(s, files)
    for name, compiled in world.ctx.traces.items():
        assert compiled.trace == emulated[name]
    sim_rows = sorted((p.submitted_s, node.name, p.pod, p.image) for node, p in world.pods)
    emu_rows = sorted((a.at_s, f"node-{a.node:03d}", a.pod, a.image) for a in cluster.schedule(s))
    assert sim_rows == emu_rows


def test_recorded_trace_workload_relative_to_the_scenario(tmp_path: Path) -> None:
    from startup.scenario import TraceWorkload
    from startup.trace import Op, Trace, TraceOp

    s = small_scenario(PullMode.LAZY, reads=0, layers=1)
    path, f = build_images(s)["img"].regular_files()[3]
    trace = Trace.of(
        [
            TraceOp(op=Op.STAT, path=path),
            TraceOp(op=Op.READ, path=path, offset=0, length=f),
            TraceOp(op=Op.READ, path="not/there", length=10),
        ]
    )
    trace.save(tmp_path / "t.jsonl")
    s = dataclasses.replace(s, workload=TraceWorkload(path="t.jsonl"), base_dir=str(tmp_path))
    (r,) = run_scenario(s, params=ZERO_PARAMS).records
    assert r.ok and r.fuse_ops == 3 and r.cache_misses == 1 and r.bytes_on_demand > 0
    missing = dataclasses.replace(s, workload=TraceWorkload(path="nope.jsonl"))
    assert "cannot read trace" in run_scenario(missing, params=ZERO_PARAMS).result.error


def test_background_fetch_pauses_while_on_demand_reads_are_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    import sim.lazy as strategies

    log: list[tuple[str, float, float]] = []
    real_fetch = strategies.fetch

    def logged(ctx, node, pod, nbytes, ranges, counter):  # type: ignore[no-untyped-def]
        t0 = ctx.env.now
        got = yield from real_fetch(ctx, node, pod, nbytes, ranges, counter)
        log.append((counter, t0, ctx.env.now))
        return got

    monkeypatch.setattr(strategies, "fetch", logged)
    s = small_scenario(
        PullMode.LAZY,
        background=True,
        reads=60,
        total_bytes=4_000_000,
        pull=PullSpec(background_fetch=True, background_request_bytes=100_000, prefetch=NoPrefetch()),
    )
    (r,) = run_scenario(s, params=ZERO_PARAMS).records
    assert r.ok and r.bytes_background > 0 and r.bytes_on_demand > 0
    on_demand = [(a, b) for c, a, b in log if c == "bytes_on_demand"]
    background = [a for c, a, _ in log if c == "bytes_background"]
    assert background and on_demand
    for start in background:
        assert not any(a < start < b for a, b in on_demand)
    # never more than background_concurrency (2) background requests at once, and 2 are used
    spans = [(a, b) for c, a, b in log if c == "bytes_background"]
    in_flight = [sum(1 for a, b in spans if a <= t < b) for t, _ in spans]
    assert max(in_flight) == 2


@pytest.mark.parametrize("mode", [PullMode.LAZY, PullMode.LAZY_PREFETCH])
def test_coalescing_cache_hits_changes_nothing(mode: PullMode) -> None:
    """Replaying hit runs as one timeout gives the per-operation timeline (contention included)."""
    from sim.scenarios import build_world

    s = small_scenario(
        mode,
        nodes=2,
        replicas=6,
        background=True,
        reads=80,
        arrivals=RolloutArrivals(replicas=6, stagger_s=0.013),
    )

    def timeline(coalesce: bool) -> tuple[list[tuple[str, int, int, int, int]], list[float]]:
        world = build_world(s, ZERO_PARAMS)
        world.ctx.coalesce = coalesce
        world.env.run()
        pods = [p for _, p in world.pods]
        counts = [(p.pod, p.bytes_on_demand, p.bytes_background, p.cache_hits, p.cache_misses) for p in pods]
        return counts, [p.ready_s for p in pods]

    (fast_counts, fast_ready), (slow_counts, slow_ready) = timeline(True), timeline(False)
    assert fast_counts == slow_counts
    assert fast_ready == pytest.approx(slow_ready, rel=1e-12)


def test_exact_timeline_of_one_lazy_start() -> None:
    """resolve (2 GETs) -> TOC (1 GET) -> create -> one read: one GET of its blocks + decode."""
    from sim.scenarios import build_world
    from sim.workload import compile_trace
    from startup.trace import Op, Trace, TraceOp

    s = small_scenario(PullMode.LAZY, reads=0, layers=1)
    image = build_images(s)["img"]
    path, size = image.regular_files()[5]
    think = 0.003
    trace = Trace.of([TraceOp(op=Op.READ, path=path, offset=0, length=size, think_s=think)])
    world = build_world(dataclasses.replace(s, workload=EmptyWorkload()), ZERO_PARAMS)
    # replay the one-read trace through the same compiled form the run uses
    world.ctx.traces["img"] = compile_trace(trace, world.ctx.images["img"], ZERO_PARAMS, "block", 50_000)
    world.env.run()
    ((_, pod),) = world.pods
    layer = world.ctx.images["img"].layers[0]
    (step,) = world.ctx.traces["img"].steps
    rtt, bw = 0.01, 10e6
    resolved = (rtt + 2000 / bw) + (rtt + 6000 / bw)
    pulled = resolved + rtt + layer.toc_bytes / bw
    nbytes = sum(layer.units("block", 50_000).lengths[u] for u in step.units)
    decode = nbytes * layer.expansion / ZERO_PARAMS.zstd_decode_bytes_per_s
    ready = pulled + think + rtt + nbytes / bw + decode + size / ZERO_PARAMS.local_read_bytes_per_s
    assert (pod.resolved_s, pod.pulled_s, pod.created_s, pod.ready_s) == pytest.approx(
        (resolved, pulled, pulled, ready), rel=1e-12
    )
    assert (pod.requests, pod.bytes_on_demand, pod.cache_misses, pod.cache_hits) == (4, nbytes, 1, 0)


def test_an_operation_through_fuse_costs_the_local_operation_plus_the_fuse_extra() -> None:
    """Calibration fits fuse_op_s/fuse_byte_s as what FUSE adds to an in-process read of the same
    bytes, so a lazy read costs the local read plus that extra (and a stat, a local op plus one
    FUSE op); fuse_cpu_s counts the extra alone."""
    from sim.scenarios import build_world
    from sim.workload import compile_trace
    from startup.trace import Op, Trace, TraceOp

    params = dataclasses.replace(
        ZERO_PARAMS, local_op_s=0.001, local_read_bytes_per_s=1e6, fuse_op_s=0.004, fuse_byte_s=2e-8
    )
    s = small_scenario(PullMode.LAZY, reads=0, layers=1)
    image = build_images(s)["img"]
    path, size = image.regular_files()[5]

    def ready_after_pull(ops: list[TraceOp]) -> tuple[float, float]:
        world = build_world(dataclasses.replace(s, workload=EmptyWorkload()), params)
        images = world.ctx.images
        world.ctx.traces["img"] = compile_trace(Trace.of(ops), images["img"], params, "block", 50_000)
        world.env.run()
        ((_, pod),) = world.pods
        return pod.ready_s - pod.pulled_s, pod.fuse_cpu_s

    read = TraceOp(op=Op.READ, path=path, offset=0, length=size)
    stat = TraceOp(op=Op.STAT, path=path)
    base, base_fuse = ready_after_pull([read])
    with_stat, stat_fuse = ready_after_pull([read, stat])
    assert with_stat - base == pytest.approx(0.001 + 0.004, rel=1e-9)
    assert (base_fuse, stat_fuse - base_fuse) == pytest.approx((0.004 + size * 2e-8, 0.004), rel=1e-9)
    # the read itself: fetch + decode (as in the exact timeline above) + local + FUSE costs
    images = build_world(s, params).ctx.images
    (step,) = compile_trace(Trace.of([read]), images["img"], params, "block", 50_000).steps
    layer = images["img"].layers[0]
    nbytes = sum(layer.units("block", 50_000).lengths[u] for u in step.units)
    fetch = 0.01 + nbytes / 10e6 + nbytes * layer.expansion / params.zstd_decode_bytes_per_s
    assert base == pytest.approx(fetch + 0.001 + size / 1e6 + 0.004 + size * 2e-8, rel=1e-9)
