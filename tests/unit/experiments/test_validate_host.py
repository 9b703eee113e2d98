"""The validate report's host-speed table: the probe around each emulated run and what goes with it."""

from __future__ import annotations

import pytest

from experiments.framework import RunData, RunResult
from experiments.hostprobe import host_probe_s
from experiments.validate import _errors, _host_table
from startup.modes import PullMode
from startup.record import StartupRecord

POINT = {"mode": "lazy", "cluster.link_bandwidth_bytes_per_s": 1.25e6, "cluster.rtt_s": 0.001,
         "cluster.nodes": 1}


def run(engine: str, seed: int, ready_s: float, probe_s: float | None) -> RunData:
    factors = {"engine": engine, **POINT}
    result = RunResult(experiment="validate", key=f"{engine}{seed}", effective_config=factors,
                       factors=factors, seed=seed, code_version="v", calibration_digest="c")
    rec = StartupRecord(engine=engine, scenario="s", seed=seed, node="n", pod="p", image="i",
                        mode=PullMode.LAZY, submitted_s=0.0, pulled_s=0.1, created_s=0.1, ready_s=ready_s)
    tables = {"host_probe": [{"before_s": str(probe_s), "after_s": str(probe_s)}]} if probe_s else {}
    return RunData(result=result, records=(rec,), tables=tables)


def test_runs_on_a_slower_host_show_up_as_longer_against_the_prediction() -> None:
    runs = [run("sim", 0, 1.0, None)]
    # the host's probe doubles from the first run to the last; the measurement grows with it
    for i, (probe, ready) in enumerate([(0.005, 1.0), (0.006, 1.1), (0.008, 1.3), (0.010, 1.5)]):
        runs.append(run("emulator", i, ready, probe))
    table = _host_table(runs, _errors(runs))
    assert table is not None
    rows = dict(table.rows)
    assert rows["emulated runs probed"] == "4"
    assert rows["probe: fastest / median / slowest (ms)"] == "5.00 / 8.00 / 10.00"
    assert rows["measured / predicted ready, runs on the faster / slower half of the host"] == "1.050 / 1.400"
    assert float(rows["correlation of probe time with measured / predicted"]) == pytest.approx(1.0, abs=0.01)


def test_no_table_without_enough_probed_runs() -> None:
    runs = [run("sim", 0, 1.0, None), run("emulator", 0, 1.0, 0.005)]
    assert _host_table(runs, _errors(runs)) is None


def test_the_probe_times_real_work() -> None:
    t = host_probe_s(repeats=2)
    assert 0 < t < 5
