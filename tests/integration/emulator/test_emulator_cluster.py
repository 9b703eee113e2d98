"""`lazylab emulate SCENARIO.toml`: emulated nodes against a shaped registry_mock, in one process."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from emulator.cluster import registry_timeline, schedule
from lazylab.cli import main
from startup.modes import PullMode
from startup.record import read_csv
from startup.scenario_io import loads_scenario

SCENARIO = """
name = "cluster-test"
seed = 5
mode = "{mode}"

[cluster]
nodes = 2
rtt_s = 0.002
link_bandwidth_bytes_per_s = 100e6

[[images]]
kind = "synthetic"
name = "app"
[[images.layers]]
name = "base"
files = 60
total_bytes = 2_000_000

[[images]]
kind = "synthetic"
name = "app2"
[[images.layers]]
name = "base"
files = 60
total_bytes = 2_000_000
[[images.layers]]
name = "top"
derived_from = "base"
changed_fraction = 0.2
files = 60
total_bytes = 2_000_000

[workload]
kind = "synthetic"
reads = 20

[arrivals]
kind = "rollout"
replicas = 4
stagger_s = 0.02
"""


@pytest.mark.parametrize("mode", ["full", "partial", "lazy", "lazy-prefetch"])
def test_emulate_writes_records_and_registry_view(tmp_path: Path, mode: str) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO.format(mode=mode))
    out = tmp_path / "out"
    assert main(["emulate", str(scenario), "--out", str(out), "--work-dir", str(tmp_path)]) == 0
    records = read_csv(out / "records.csv")
    assert len(records) == 4 and all(r.ok for r in records)
    assert {r.node for r in records} == {"node-000", "node-001"}
    assert {r.image for r in records} == {"app", "app2"}
    assert all(r.mode is PullMode(mode) and r.engine == "emulator" for r in records)
    with open(out / "registry-timeline.csv") as fh:
        rows = list(csv.DictReader(fh))
    sent = sum(float(r["bytes_sent"]) for r in rows)
    fetched = sum(r.bytes_fetched for r in records)
    assert sent >= 0.9 * fetched  # the registry's view accounts for what the nodes fetched
    assert (out / "effective-config.toml").exists()


@pytest.mark.parametrize("mode", ["full", "lazy"])
def test_emulate_with_a_process_per_node_gives_every_pod_its_record(tmp_path: Path, mode: str) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO.format(mode=mode))
    out = tmp_path / "out"
    args = ["emulate", str(scenario), "--out", str(out), "--work-dir", str(tmp_path), "--node-processes"]
    assert main(args) == 0
    records = read_csv(out / "records.csv")
    planned = schedule(loads_scenario(SCENARIO.format(mode=mode)))
    expected = {(p.pod, f"node-{p.node:03d}", p.image) for p in planned}
    assert {(r.pod, r.node, r.image) for r in records} == expected
    assert all(r.ok for r in records)
    # one time origin for every process: pods start no earlier than their scheduled arrival
    arrivals = {p.pod: p.at_s for p in planned}
    assert all(r.submitted_s >= arrivals[r.pod] - 1e-3 for r in records)
    with open(out / "node-cpu.csv") as fh:
        cpu = {row["node"]: float(row["cpu_s"]) for row in csv.DictReader(fh)}
    assert set(cpu) == {"node-000", "node-001"} and all(s > 0 for s in cpu.values())


def test_schedule_and_timeline_are_pure() -> None:
    s = loads_scenario(SCENARIO.format(mode="lazy"))
    arrivals = schedule(s)
    assert [a.node for a in arrivals] == [0, 1, 0, 1]
    assert [a.image for a in arrivals] == ["app", "app2", "app", "app2"]
    assert [round(a.at_s, 3) for a in arrivals] == [0.0, 0.02, 0.04, 0.06]
    rows = registry_timeline(
        [
            {"ts": 10.2, "duration_s": 0.2, "bytes_sent": 1000},
            {"ts": 10.1, "duration_s": 0.1, "bytes_sent": 0},
        ],
        origin_epoch_s=10.0,
        bin_s=0.1,
    )
    assert [r["bytes_sent"] for r in rows] == [500, 500]
    assert rows[0]["concurrent_transfers"] == pytest.approx(1.0)
