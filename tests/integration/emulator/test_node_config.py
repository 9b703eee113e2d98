"""Emulated nodes take the proposal's configuration as input: the pull mode comes from storage.conf
plus the rendered drop-in, and boot runs check-layer-state against a state file, removing exactly
the lazily pulled images (a later start re-pulls them). The simulator's pool toggle decides the
same removals for the same sequence of configurations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import simpy
from emulator_fixtures import MockImages

from emulator.modes import StartSpec, run_start
from emulator.node import EmulatedNode
from emulator.nodeboot import STORAGE_CONF, default_state_file, node_images
from emulator.reference import parse_reference
from nodeconfig.crc import parse_crc_object
from nodeconfig.layerstate import ImageRecord, Transition, check_layer_state
from nodeconfig.markers import marker_for_storage_conf, pool_toggle_markers
from nodeconfig.render import render_node, write_rendered
from nodeconfig.storageconf import load_storage_conf
from registry_mock.app import running_registry
from registry_mock.config import RegistrySpec
from sim.node import SimNode
from startup.modes import PullMode
from startup.record import StartupRecord
from startup.scenario import PullSpec
from startup.trace import Op, Trace, TraceOp

BASE_CONF = """# the node's own settings: they must survive the drop-in
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"

[storage.options]
mount_program = "/usr/bin/fuse-overlayfs"

[storage.options.pull_options]
enable_partial_images = "true"
"""
QUIET = PullSpec(background_fetch=False)


def _crc(mode: str) -> dict:
    return {
        "apiVersion": "machineconfiguration.openshift.io/v1",
        "kind": "ContainerRuntimeConfig",
        "metadata": {"name": "lazy-image-pull"},
        "spec": {
            "machineConfigPoolSelector": {
                "matchLabels": {"pools.operator.machineconfiguration.openshift.io/worker": ""}
            },
            "containerRuntimeConfig": {"lazyImagePull": {"mode": mode}},
        },
    }


def configure(root: Path, mode: str) -> str:
    """Lay the machine config operator's files for `mode` over a node root with a base storage.conf."""
    base = root / STORAGE_CONF
    if not base.exists():
        base.parent.mkdir(parents=True, exist_ok=True)
        base.write_text(BASE_CONF)
    rendered = render_node(parse_crc_object(_crc(mode)), "worker")
    write_rendered(rendered, root)
    return rendered.marker


@pytest.fixture(scope="module")
def refs(mock_images: MockImages) -> Iterator[tuple[list[str], str]]:
    """Two image references on an in-process registry_mock, and a file path both images have."""
    with running_registry(RegistrySpec(), storage=mock_images.storage) as reg:
        keys = sorted(mock_images.refs)
        fmt = keys[0][1]
        chosen = [k for k in keys if k[1] == fmt][:2]
        files = mock_images.files(chosen[0][0])
        name = max(files, key=lambda n: len(files[n]))
        yield [f"{reg.address}/{mock_images.refs[k]}" for k in chosen], name


def _trace(name: str) -> Trace:
    return Trace.of([TraceOp(op=Op.READ, path=name, offset=0, length=200_000)])


async def _start(node: EmulatedNode, ref: str, name: str, mode: PullMode | None = None) -> StartupRecord:
    assert node.pull_mode is not None
    spec = StartSpec(mode=mode or node.pull_mode, trace=_trace(name), pull=QUIET)
    rec = await run_start(node, parse_reference(ref), spec)
    assert rec.ok, rec.error
    return rec


async def test_rendered_config_makes_the_node_lazy_and_keeps_the_base_settings(
    refs: tuple[list[str], str], tmp_path: Path
) -> None:
    (ref, _), name = refs[0], refs[1]
    root = tmp_path / "root"
    marker = configure(root, "Enabled")
    merged = load_storage_conf(root / STORAGE_CONF)
    assert merged["storage"]["options"]["mount_program"] == "/usr/bin/fuse-overlayfs"
    assert merged["storage"]["driver"] == "overlay"
    node = EmulatedNode("n", tmp_path / "work", config_root=root)
    try:
        boot = await node.boot()
        assert boot.pull_mode is PullMode.LAZY and node.pull_mode is PullMode.LAZY
        assert boot.marker == marker and marker.startswith("version=1;store-format=1;ALS=")
        assert boot.decision.transition is Transition.NO_STATE and boot.removed == ()
        assert default_state_file(root).read_text() == marker
        rec = await _start(node, ref, name)
        assert rec.mode is PullMode.LAZY and rec.bytes_toc > 0 and rec.bytes_layers == 0
        # lazy off: the drop-in is gone, the base file's partial-pull setting decides again
        configure(root, "Disabled")
        assert (await node.boot()).pull_mode is PullMode.PARTIAL
    finally:
        await node.close()


async def test_on_to_off_removes_exactly_the_lazily_pulled_images(
    refs: tuple[list[str], str], tmp_path: Path
) -> None:
    (lazy_a, lazy_b), name = refs
    root = tmp_path / "root"
    configure(root, "Enabled")
    node = EmulatedNode("n", tmp_path / "work", config_root=root, state_file=tmp_path / "state")
    try:
        await node.boot()
        first = await _start(node, lazy_a, name)
        await run_start(node, parse_reference(lazy_b), StartSpec(mode=PullMode.LAZY, trace=_trace(name)))
        await _start(node, lazy_a, name, PullMode.PARTIAL)  # a local root: not in the store
        lazy_keys = set(node.stores)
        assert len(lazy_keys) == 2 and node.background  # lazy_b runs a background fetch
        roots = list(node.local_roots)
        configure(root, "Disabled")
        boot = await node.boot()
        assert boot.decision.transition is Transition.DISABLED
        assert set(boot.removed) == lazy_keys
        assert not node.stores and not node.background
        assert node.local_roots == roots and all(r.is_dir() for r in roots)
        assert [i.reference for i in node_images(node)] == [f"local:{r.name}" for r in roots]
        assert (tmp_path / "state").read_text() == ""
        again = await _start(node, lazy_a, name, PullMode.LAZY)  # re-pulled from the registry
        assert again.bytes_toc == first.bytes_toc > 0
        assert again.bytes_on_demand > 0 and again.bytes_fetched > 0
    finally:
        await node.close()


async def test_off_to_on_keeps_local_images(refs: tuple[list[str], str], tmp_path: Path) -> None:
    (ref, _), name = refs
    root = tmp_path / "root"
    configure(root, "Disabled")
    node = EmulatedNode("n", tmp_path / "work", config_root=root)
    try:
        assert (await node.boot()).pull_mode is PullMode.PARTIAL
        await _start(node, ref, name)
        configure(root, "Enabled")
        boot = await node.boot()
        assert boot.decision.transition is Transition.ENABLED and boot.removed == ()
        assert boot.previous_marker == "" and len(node.local_roots) == 1
        rec = await _start(node, ref, name)
        assert rec.mode is PullMode.LAZY and rec.bytes_fetched > 0
    finally:
        await node.close()


@pytest.mark.parametrize("lose_state", [False, True])
async def test_unchanged_keeps_lazy_images_a_lost_state_file_removes_them(
    refs: tuple[list[str], str], tmp_path: Path, lose_state: bool
) -> None:
    (ref, _), name = refs
    root = tmp_path / "root"
    configure(root, "Enabled")
    node = EmulatedNode("n", tmp_path / "work", config_root=root)
    try:
        await node.boot()
        first = await _start(node, ref, name)
        keys = set(node.stores)
        if lose_state:
            default_state_file(root).unlink()
        boot = await node.boot()
        rec = await _start(node, ref, name)
        if lose_state:
            assert boot.decision.transition is Transition.NO_STATE and set(boot.removed) == keys
            assert rec.bytes_toc == first.bytes_toc > 0 and rec.bytes_on_demand > 0
        else:
            assert boot.decision.transition is Transition.UNCHANGED and boot.removed == ()
            assert set(node.stores) == keys
            assert rec.bytes_toc == 0 and rec.bytes_on_demand == 0  # the mounted image is reused
        assert default_state_file(root).read_text() == boot.marker
    finally:
        await node.close()


@pytest.mark.parametrize(
    "sequence",
    [("lazy", "full"), ("full", "lazy"), ("partial", "lazy-prefetch"), ("lazy-prefetch", "partial")],
)
def test_sim_and_emulator_remove_the_same_images_on_a_toggle(
    tmp_path: Path, sequence: tuple[str, str]
) -> None:
    """Same images on a node (two lazily pulled, one full), same toggle: same transition, same removals."""
    before, after = sequence
    present = {"a": PullMode(before), "b": PullMode.FULL, "c": PullMode(before)}
    # simulator: markers from the pool toggle's modes, images from what the node has present
    sim_node = SimNode(
        simpy.Environment(),
        index=0,
        members=["n"],
        link=None,  # type: ignore[arg-type]  # check-layer-state needs no network
        registry=None,  # type: ignore[arg-type]
        rtt_s=0.0,
        cores=1,
        pull_slots=0,
        background_concurrency=1,
    )
    sim_node.present = dict(present)
    m0, m1 = pool_toggle_markers(before, after)
    sim = sim_node.wipe_lazy(m0, m1)
    # emulator: markers from rendered configuration files, images as an emulated node lists them
    root = tmp_path / "root"
    crc = {"lazy": "Enabled", "lazy-prefetch": "Enabled", "full": "Disabled", "partial": "Disabled"}
    configure(root, crc[before])
    e0 = marker_for_storage_conf(load_storage_conf(root / STORAGE_CONF))
    configure(root, crc[after])
    e1 = marker_for_storage_conf(load_storage_conf(root / STORAGE_CONF))
    assert (e0, e1) == (m0, m1)
    images = [
        ImageRecord(reference=k, als_layers=2 if m.value.startswith("lazy") else 0)
        for k, m in present.items()
    ]
    emu = check_layer_state(e0, e1, images)
    assert emu.transition is sim.transition
    assert [i.reference for i in emu.remove] == [i.reference for i in sim.remove]
    assert sorted(sim_node.present) == sorted(set(present) - {i.reference for i in emu.remove})
