"""The engine adapters: one tiny scenario through the simulator and, for real, through the emulator."""

from __future__ import annotations

import pytest

from experiments.calibration_file import load_calibration
from experiments.engines import EngineRunError, engine_effective, run_engine
from experiments.framework import Calibration

SCENARIO = {
    "name": "tiny",
    "mode": "lazy",
    "cluster": {"nodes": 1, "link_bandwidth_bytes_per_s": 50e6, "rtt_s": 0.002},
    "images": [{"kind": "synthetic", "name": "app", "layers": [{"name": "base", "files": 30,
                                                                "total_bytes": 2_000_000}]}],
    "workload": {"kind": "synthetic", "reads": 10, "working_set_fraction": 0.1},
    "pull": {"background_fetch": False, "prefetch": {"kind": "none"}},
}


def test_engine_effective_keeps_the_engine_and_fills_defaults():
    eff = engine_effective({**SCENARIO, "engine": "emulator"})
    assert eff["engine"] == "emulator" and "seed" not in eff and "registry" in eff
    assert engine_effective(eff) == eff


@pytest.mark.timeout(120)
def test_both_engines_start_the_same_pods_from_the_same_image():
    cfg = engine_effective(SCENARIO)
    cal = load_calibration(None)
    out = {eng: run_engine({**cfg, "engine": eng}, 3, cal) for eng in ("sim", "emulator")}
    sim, emu = out["sim"].records, out["emulator"].records
    assert len(sim) == len(emu) == 1 and sim[0].mode == emu[0].mode and sim[0].image == emu[0].image == "app"
    assert sim[0].engine == "sim" and emu[0].engine == "emulator"
    assert sim[0].ok and emu[0].ok, (sim[0].error, emu[0].error)
    # no prefetch, no background fetch: both moved the TOC plus what the trace read, a fraction of the layer
    for r in (sim[0], emu[0]):
        assert 0 < r.bytes_on_demand < 2_000_000 and r.bytes_layers == 0
    assert "registry_timeline" in out["emulator"].tables and out["sim"].tables["egress"]


def test_unknown_engine_is_a_failed_run():
    with pytest.raises(EngineRunError, match="engine"):
        run_engine({**SCENARIO, "engine": "crystal-ball"}, 0, Calibration.none())


def test_records_join_on_node_and_pod():
    cfg = engine_effective({**SCENARIO, "cluster": {**SCENARIO["cluster"], "nodes": 2},
                            "arrivals": {"kind": "rollout", "replicas": 2}, "workload": {"kind": "empty"}})
    keys = {eng: [(r.node, r.pod) for r in run_engine({**cfg, "engine": eng}, 0, Calibration.none()).records]
            for eng in ("sim", "emulator")}
    assert keys["sim"] == keys["emulator"]
