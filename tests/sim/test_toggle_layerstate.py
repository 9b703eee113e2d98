"""The pool toggle's check-layer-state goes through `nodeconfig.layerstate` with the markers the
before/after configurations imply: what each node removed is recorded per boot, and a toggle
that keeps lazy pulling off removes nothing."""

from __future__ import annotations

import pytest

from nodeconfig.layerstate import Transition
from sim.scenarios import World, build_world
from startup.modes import PullMode
from startup.scenario import ToggleSpec
from tests.sim.conftest import ZERO_PARAMS, small_scenario


def _run(before: PullMode, after: PullMode) -> World:
    s = small_scenario(
        before,
        nodes=2,
        replicas=2,
        reads=10,
        toggle=ToggleSpec(at_s=5.0, max_unavailable=1, drain_s=1.0, reboot_s=2.0, to_mode=after),
    )
    world = build_world(s, ZERO_PARAMS)
    while world.env.peek() <= s.sim.horizon_s:
        world.env.step()
    return world


@pytest.mark.parametrize(
    ("before", "after", "transition", "removed"),
    [
        (PullMode.LAZY, PullMode.FULL, Transition.DISABLED, ("img",)),
        (PullMode.LAZY_PREFETCH, PullMode.PARTIAL, Transition.DISABLED, ("img",)),
        (PullMode.FULL, PullMode.LAZY, Transition.ENABLED, ()),
        (PullMode.LAZY, PullMode.LAZY, Transition.RECONFIGURED, ("img",)),
        (PullMode.FULL, PullMode.PARTIAL, Transition.UNCHANGED, ()),
    ],
)
def test_each_boot_records_its_decision(before, after, transition, removed) -> None:
    world = _run(before, after)
    for node in world.nodes:
        assert len(node.layer_state_log) == 1
        d = node.layer_state_log[0]
        assert d.transition is transition
        assert tuple(i.reference for i in d.remove) == removed
        assert node.layer_state == d.new_state
        # a removed image is pulled again in the new mode; a kept one is reused as it is
        assert node.present == {"img": after if removed else before}


def test_unchanged_marker_keeps_images_and_store_state() -> None:
    world = _run(PullMode.LAZY, PullMode.LAZY)  # a store change: everything lazy goes
    assert all(n.layer_state_log[0].remove for n in world.nodes)
    node = world.nodes[0]
    node.present["img"] = PullMode.LAZY
    state = dict(node.lazy_layers)
    d = node.wipe_lazy(node.layer_state, node.layer_state or "")  # reboot, same configuration
    assert d.transition is Transition.UNCHANGED and not d.remove
    assert node.present == {"img": PullMode.LAZY} and node.lazy_layers == state
