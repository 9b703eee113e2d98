"""Determinism (byte-identical outputs per seed) and golden summaries of seeded scenarios.

Regenerate the golden files after an intended model change with
    LAZYLAB_REGEN_GOLDEN=1 .venv/bin/pytest tests/sim/test_determinism.py
and say why in the commit message.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import pytest

from sim.run import run_scenario, write_run
from startup.metrics import summarize_run
from startup.modes import PullMode
from startup.scenario_io import load_scenario

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
OUTPUTS = ("records.csv", "egress.csv", "node_cpu.csv", "effective.toml")

GOLDEN_CASES = {
    "one-pod": ("scenarios/one-pod.toml", ["workload.reads=200"], list(PullMode)),
    "shared-layers": (
        "scenarios/shared-layers.toml",
        ["cluster.nodes=4", "arrivals.replicas=8"],
        [PullMode.FULL, PullMode.PARTIAL],
    ),
    "poisson-burst": (
        "scenarios/poisson-burst.toml",
        ["cluster.nodes=10", "arrivals.pods=40"],
        [PullMode.LAZY, PullMode.LAZY_PREFETCH],
    ),
}


def _outputs(tmp: Path, seed: int) -> dict[str, bytes]:
    s = load_scenario(
        ROOT / "scenarios/poisson-burst.toml",
        overrides=["cluster.nodes=6", "arrivals.pods=20", f"seed={seed}"],
    )
    d = write_run(run_scenario(s), s, tmp / f"seed-{seed}", prometheus=True)
    return {name: (d / name).read_bytes() for name in (*OUTPUTS, "metrics.prom")}


def test_same_seed_gives_byte_identical_outputs(tmp_path: Path) -> None:
    a = _outputs(tmp_path / "a", 3)
    b = _outputs(tmp_path / "b", 3)
    assert a == b
    c = _outputs(tmp_path / "c", 4)
    assert a["records.csv"] != c["records.csv"]


def _summary(path: str, overrides: list[str], modes: list[PullMode]) -> dict[str, dict[str, float]]:
    base = load_scenario(ROOT / path, overrides=overrides)
    out: dict[str, dict[str, float]] = {}
    for mode in modes:
        run = run_scenario(dataclasses.replace(base, mode=mode))
        assert not run.result.error
        s = summarize_run(run.records, mode)
        out[mode.value] = {
            "pods": s.pods,
            "failed": s.failed,
            "ttr_p50_s": s.ttr_p50_s,
            "ttr_p95_s": s.ttr_p95_s,
            "ttr_p99_s": s.ttr_p99_s,
            "bytes_from_registry": run.result.bytes_from_registry,
            "requests": sum(r.requests for r in run.records),
            "sim_time_s": run.result.sim_time_s,
        }
    return out


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_summaries(name: str) -> None:
    got = _summary(*GOLDEN_CASES[name])
    path = GOLDEN / f"{name}.json"
    if os.environ.get("LAZYLAB_REGEN_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    assert set(got) == set(want)
    for mode, stats in want.items():
        for key, value in stats.items():
            assert math.isclose(got[mode][key], value, rel_tol=1e-9, abs_tol=1e-12), (mode, key)
