"""The four pull modes on the same image and trace: same bytes read; partial reuses earlier pulls."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from emulator_fixtures import sample_files, write_tree
from emulator_imagetools import RunningRegistry, skopeo_push

from emulator.modes import StartSpec, run_start_detailed
from emulator.node import EmulatedNode
from emulator.reference import parse_reference
from startup.modes import PullMode
from startup.trace import Op, Trace, TraceOp

pytestmark = pytest.mark.interop


def workload() -> Trace:
    return Trace.of(
        [
            TraceOp(op=Op.STAT, path="etc/hello"),
            TraceOp(op=Op.READ, path="etc/hello", offset=0, length=4096),
            TraceOp(op=Op.STAT, path="usr/bin/missing"),  # a probe: ENOENT is part of the workload
            TraceOp(op=Op.READLINK, path="usr/bin/link"),
            TraceOp(op=Op.READ, path="usr/bin/link", offset=0, length=65536, think_s=0.001),
            TraceOp(op=Op.READ, path="usr/bin/big", offset=2_500_000, length=300_000),
            TraceOp(op=Op.READ, path="etc/app.conf", offset=100, length=10_000),
            TraceOp(op=Op.LISTDIR, path="usr/bin"),
        ]
    )


def expected_digest() -> str:
    import hashlib

    files = sample_files()
    big, conf = files["usr/bin/big"], files["etc/app.conf"]
    assert isinstance(big, bytes) and isinstance(conf, bytes)
    read = b"hi\n" + big[:65536] + big[2_500_000:2_800_000] + conf[100:10_100]
    return "sha256:" + hashlib.sha256(read).hexdigest()


@pytest.mark.parametrize("fmt", ["estargz", "zstd:chunked", "zstd:chunked-legacy", "skopeo-zstd:chunked"])
async def test_four_modes_read_the_same_bytes(
    built_images: dict[str, str], pushed_image: tuple[str, dict], fmt: str, tmp_path: Path
) -> None:
    if fmt == "skopeo-zstd:chunked":
        ref = parse_reference(pushed_image[0])  # made by skopeo 1.9.3 (containers/storage 1.43)
    else:
        ref = parse_reference(built_images[fmt])
    for mode in PullMode:
        node = EmulatedNode(f"node-{mode.value}", tmp_path / mode.value)
        try:
            res = await run_start_detailed(node, ref, StartSpec(mode=mode, trace=workload()))
        finally:
            await node.close()
        rec = res.record
        assert rec.ok, f"{fmt} {mode}: {rec.error}"
        assert res.replay is not None and res.replay.digest == expected_digest(), (fmt, mode)
        assert res.replay.missing == 1
        assert rec.submitted_s <= rec.resolved_s <= rec.pulled_s <= rec.created_s <= rec.ready_s
        assert rec.engine == "emulator" and not math.isnan(rec.ready_s)
        if mode is PullMode.FULL:
            assert rec.bytes_layers > 2_000_000 and rec.bytes_on_demand == 0
        elif mode is PullMode.PARTIAL:
            assert rec.bytes_toc > 0 and rec.bytes_layers > 2_000_000
        else:
            assert rec.bytes_layers == 0 and rec.bytes_toc > 0
            assert rec.bytes_on_demand + rec.bytes_prefetch > 0


async def test_partial_reuses_an_earlier_similar_image(
    registry: RunningRegistry, tmp_path: Path, built_images: dict[str, str]
) -> None:
    from imageformat.build import build_image

    fmt = "zstd:chunked" if "zstd:chunked" in built_images else "estargz"
    refs = []
    for version, extra in (("v1", b"one"), ("v2", b"two, changed")):
        src = tmp_path / f"src-{version}"
        write_tree(src, {**sample_files(), "etc/version": extra})
        build_image(src, tmp_path / f"oci-{version}", version, fmt)
        ref = f"{registry.host}/lab/similar:{version}"
        skopeo_push(tmp_path / f"oci-{version}", version, ref, compress_format=None)
        refs.append(parse_reference(ref))
    node = EmulatedNode("node", tmp_path / "node")
    try:
        first = await run_start_detailed(node, refs[0], StartSpec(mode=PullMode.PARTIAL, trace=workload()))
        second = await run_start_detailed(node, refs[1], StartSpec(mode=PullMode.PARTIAL, trace=workload()))
    finally:
        await node.close()
    assert first.record.ok and second.record.ok, (first.record.error, second.record.error)
    assert first.record.bytes_reused == 0
    assert second.record.bytes_reused > 3_000_000
    assert second.record.bytes_layers < first.record.bytes_layers / 10
    assert second.replay is not None and second.replay.digest == expected_digest()
