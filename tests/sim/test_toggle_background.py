"""Background fetch after a machine-config-pool toggle: a node that rebooted and pulls lazily again
fetches the whole blob in the background again (the workers of the old boot do not hold its slots)."""

from __future__ import annotations

from sim.run import run_scenario
from sim.scenarios import build_images
from startup.modes import PullMode
from startup.scenario import ToggleSpec
from tests.sim.conftest import ZERO_PARAMS, small_scenario


def _lazy_bytes(r) -> int:  # type: ignore[no-untyped-def]
    return r.bytes_on_demand + r.bytes_prefetch + r.bytes_background


def test_a_store_change_re_pulls_lazily_and_the_background_fetch_runs_again() -> None:
    s = small_scenario(
        PullMode.LAZY,
        layers=1,  # one mount after the reboot: its wake-up is the only chance to start the workers
        nodes=2,
        replicas=2,
        reads=10,
        background=True,
        toggle=ToggleSpec(at_s=30.0, max_unavailable=1, drain_s=1.0, reboot_s=5.0, to_mode=PullMode.LAZY),
    )
    recs = run_scenario(s, params=ZERO_PARAMS).records
    blobs = sum(layer.blob_size for layer in build_images(s)["img"].layers if layer.lazy)
    before = [r for r in recs if not r.pod.endswith("-r")]
    after = [r for r in recs if r.pod.endswith("-r")]
    assert len(after) == 2 and all(r.ok for r in after)
    # the first boot fetched every layer's data once (on demand + background) ...
    assert all(_lazy_bytes(r) == blobs for r in before)
    # ... and so does the second boot, after check-layer-state wiped the lazily pulled image
    assert all(r.bytes_background > 0 and _lazy_bytes(r) == blobs for r in after)
