"""How the engines plug into experiments: run functions `(config, seed, calibration) -> RunOutput`.

- `run_sim`: the config is a scenario (startup/scenario.py, the TOML loader's dict form); the
  seed replaces `seed`; the calibration's fitted params become the simulator's
  `CalibratedParams`; sim.run.run_scenario runs it. A run the simulator reports as failed raises
  `EngineRunError`, so the framework records it as a failed run.
- `run_emulator`: the same scenario run for real (the wiring of `lazylab emulate`): synthetic
  images built for real (or the scenario's OCI layouts), imported into a registry_mock in its
  own process (storage in a temporary directory) shaped like the scenario's network on
  127.0.0.1, the emulated cluster run against it. Returns the records and the registry's
  timeline. The calibration is not used (the emulator is what calibration measures).
  Wall-clock: run emulator runs one at a time (`Experiment(max_parallel=1)`).
- `run_engine`: dispatches on the config's `engine` key ("sim" | "emulator"), which is removed
  before the scenario is read; use it with an `engine` factor to run both engines in one sweep.
- `sim_effective` / `engine_effective`: the `effective` hooks for scenario configs: every
  default spelled out, `seed` dropped (the framework owns seeds), so equal scenarios get equal
  run keys (`engine_effective` keeps the `engine` key).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from experiments.calibration import FittedParams
from experiments.errors import ExperimentError
from experiments.framework import Calibration, RunOutput
from experiments.scratch import scratch_dir
from registry_mock import preciseloop


class EngineRunError(ExperimentError):
    """An engine finished a run with an error (bad image, model error, horizon reached...)."""


def sim_effective(config: dict[str, Any]) -> dict[str, Any]:
    from startup.scenario_io import effective_config, scenario_from_dict

    out = effective_config(scenario_from_dict({**config, "seed": 0}))
    out.pop("seed", None)
    return out


def run_sim(config: dict[str, Any], seed: int, calibration: Calibration) -> RunOutput:
    from sim.params import CalibratedParams
    from sim.run import run_scenario
    from startup.scenario_io import scenario_from_dict

    scenario = scenario_from_dict({**config, "seed": seed})
    params = calibration.params
    sim_params = CalibratedParams(**params.sim_params()) if isinstance(params, FittedParams) else None
    run = run_scenario(scenario, params=sim_params, calibration_digest=calibration.digest)
    if run.result.error:
        raise EngineRunError(run.result.error)
    egress = [{"registry": s.name, "t_s": t, "bytes_per_s": rate} for s in run.egress for t, rate in s.rows()]
    cpu = [{"node": c.node, "fuse_cpu_s": c.fuse_cpu_s, "cpu_s": c.cpu_s, "compute_s": c.compute_s}
           for c in run.node_cpu]
    return RunOutput(records=run.records, tables={"egress": egress, "node_cpu": cpu},
                     sim_time_s=run.result.sim_time_s)


_SERVE_REGISTRY = """
import asyncio, json, sys
from registry_mock import preciseloop
from registry_mock.app import start_registry
from registry_mock.config import LinkSpec, RegistrySpec
from registry_mock.disk import DiskStorage

async def main():
    root, log, link = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if link.get("overload_curve") is not None:  # JSON made the (transfers, efficiency) pairs lists
        link["overload_curve"] = tuple(tuple(p) for p in link["overload_curve"])
    spec = RegistrySpec(link=LinkSpec(**link), access_log=log)
    reg = await start_registry(spec, storage=DiskStorage(root))
    print(reg.address, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until our parent closes stdin
    await reg.stop()

preciseloop.run(main())
"""


@contextlib.contextmanager
def registry_process(root: Path, link: dict[str, Any], access_log: Path) -> Iterator[str]:
    """registry_mock serving `root` in its own process (no GIL shared with the emulated nodes:
    a registry thread in the nodes' process stalled their trace replay while bodies were being
    sent); yields its host:port; stopped when the block ends."""
    cmd = [sys.executable, "-c", _SERVE_REGISTRY, str(root), str(access_log), json.dumps(link)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        if not address:
            raise EngineRunError(f"registry_mock process exited with status {proc.wait(timeout=30)}")
        yield address
    finally:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_emulator(config: dict[str, Any], seed: int, calibration: Calibration) -> RunOutput:
    import tempfile

    from emulator.cluster import image_files, link_parameters, registry_timeline, run_cluster, workload_traces
    from emulator.reference import parse_reference
    from emulator.synthbuild import build_synthetic_images
    from registry_mock.accesslog import read_access_log
    from registry_mock.disk import DiskStorage
    from registry_mock.importer import import_oci_layout
    from startup.scenario import OciImageSpec, SyntheticImageSpec
    from startup.scenario_io import scenario_from_dict

    scenario = scenario_from_dict({**config, "seed": seed})
    with tempfile.TemporaryDirectory(prefix="lazylab-emulate-", dir=scratch_dir()) as tmp:
        work = Path(tmp)
        layouts: dict[str, tuple[Path, str]] = {}
        synthetic = [img for img in scenario.images if isinstance(img, SyntheticImageSpec)]
        if synthetic:
            for name, path in build_synthetic_images(synthetic, work / "images", scenario.seed).items():
                layouts[name] = (path, "latest")
        for img in scenario.images:
            if isinstance(img, OciImageSpec):
                layouts[img.name] = (Path(scenario.resolve_path(img.layout)), img.tag or "latest")
        storage = DiskStorage(work / "registry")
        for name, (layout, tag) in layouts.items():
            import_oci_layout(layout, f"lab/{name.lower()}", tag, storage)
        traces = workload_traces(scenario, {n: image_files(lay, tag) for n, (lay, tag) in layouts.items()})
        log_path = work / "access.jsonl"
        with registry_process(work / "registry", link_parameters(scenario), log_path) as address:
            refs = {n: parse_reference(f"{address}/lab/{n.lower()}:{tag}") for n, (_, tag) in layouts.items()}
            result = preciseloop.run(run_cluster(scenario, refs, traces, work / "nodes", node_processes=True,
                                                 loop_factory=preciseloop.new_event_loop))
        log = read_access_log(log_path) if log_path.exists() else []
    timeline = registry_timeline(log, origin_epoch_s=result.origin_epoch_s,
                                 bin_s=scenario.sim.egress_sample_s)
    records = sorted(result.records, key=lambda r: (r.pod, r.node))
    # sim_time_s: the emulated cluster's wall-clock span (the emulator's clock)
    # the pods' CPU per node process (the simulator's node_cpu compute_s on the shared host)
    cpu = [{"node": node, "cpu_s": s} for node, s in sorted(result.node_cpu_s.items())]
    return RunOutput(records=records, tables={"registry_timeline": timeline, "node_cpu": cpu},
                     sim_time_s=result.wall_s)


def engine_effective(config: dict[str, Any]) -> dict[str, Any]:
    engine = config.get("engine", "sim")
    return {"engine": engine, **sim_effective({k: v for k, v in config.items() if k != "engine"})}


ENGINES = {"sim": run_sim, "emulator": run_emulator}


def run_engine(config: dict[str, Any], seed: int, calibration: Calibration) -> RunOutput:
    engine = config.get("engine", "sim")
    if engine not in ENGINES:
        raise EngineRunError(f"engine (={engine!r}) must be one of {', '.join(ENGINES)}")
    return ENGINES[engine]({k: v for k, v in config.items() if k != "engine"}, seed, calibration)
