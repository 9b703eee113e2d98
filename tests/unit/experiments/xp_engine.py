"""A small deterministic engine for framework tests: records from (config, seed), invocations counted.

It stands in for sim.run so the framework is tested on its own; every call appends a line to
$LAZYLAB_XP_COUNTER (if set) so tests can count real executions instead of timing them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from experiments.framework import Calibration, RunOutput
from startup.modes import PullMode
from startup.record import StartupRecord


def _count(config: dict[str, Any], seed: int) -> None:
    path = os.environ.get("LAZYLAB_XP_COUNTER")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{config.get('mode')} {config.get('link', {}).get('rtt_s')} {seed}\n")


def run(config: dict[str, Any], seed: int, calibration: Calibration) -> RunOutput:
    _count(config, seed)
    if config.get("fail"):
        raise RuntimeError(f"asked to fail (mode={config['mode']})")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    link = config["link"]
    size = int(config["image_bytes"])
    overhead = 0.0 if calibration.params is None else float(calibration.params["overhead_s"])
    mode = PullMode.parse(config["mode"])
    fetched = size if mode in (PullMode.FULL, PullMode.PARTIAL) else size // 10
    records = []
    for pod in range(int(config.get("pods", 2))):
        pulled = link["rtt_s"] + overhead + fetched / link["bandwidth_bytes_per_s"]
        ready = pulled + float(rng.uniform(0.1, 0.2))
        records.append(StartupRecord(engine="sim", scenario="xp", seed=seed, node="n0", pod=f"p{pod}",
                                     image="img", mode=mode, submitted_s=0.0, resolved_s=link["rtt_s"],
                                     pulled_s=pulled, created_s=pulled, ready_s=ready,
                                     bytes_layers=fetched, requests=1))
    return RunOutput(records=records, tables={"egress": [{"t_s": 0.0, "bytes": fetched}]},
                     sim_time_s=max(r.ready_s for r in records))


BASE = {"mode": "full", "image_bytes": 1_000_000, "pods": 2,
        "link": {"rtt_s": 0.001, "bandwidth_bytes_per_s": 1e7}}
