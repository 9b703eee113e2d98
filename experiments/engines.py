"""How the engines plug into experiments: run functions `(config, seed, calibration) -> RunOutput`.

- `run_sim`: the config is a scenario (startup/scenario.py, the TOML loader's dict form); the
  seed replaces `seed`; the calibration's fitted params become the simulator's
  `CalibratedParams`; sim.run.run_scenario runs it. A run the simulator reports as failed raises
  `EngineRunError`, so the framework records it as a failed run.
- `run_emulator`: the same scenario run for real (the wiring of `lazylab emulate`): synthetic
  images built for real (or the scenario's OCI layouts), imported into an in-memory
  registry_mock shaped like the scenario's network on 127.0.0.1, the emulated cluster run
  against it. Returns the records and the registry's timeline. The calibration is not used
  (the emulator is what calibration measures). Wall-clock: run emulator runs one at a time
  (`Experiment(max_parallel=1)`).
- `run_engine`: dispatches on the config's `engine` key ("sim" | "emulator"), which is removed
  before the scenario is read; use it with an `engine` factor to run both engines in one sweep.
- `sim_effective` / `engine_effective`: the `effective` hooks for scenario configs: every
  default spelled out, `seed` dropped (the framework owns seeds), so equal scenarios get equal
  run keys (`engine_effective` keeps the `engine` key).
"""

from __future__ import annotations

from typing import Any

from experiments.calibration import FittedParams
from experiments.errors import ExperimentError
from experiments.framework import Calibration, RunOutput


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
    cpu = [{"node": c.node, "fuse_cpu_s": c.fuse_cpu_s, "cpu_s": c.cpu_s} for c in run.node_cpu]
    return RunOutput(records=run.records, tables={"egress": egress, "node_cpu": cpu},
                     sim_time_s=run.result.sim_time_s)


def run_emulator(config: dict[str, Any], seed: int, calibration: Calibration) -> RunOutput:
    import asyncio
    import tempfile
    from pathlib import Path

    from emulator.cluster import image_files, link_parameters, registry_timeline, run_cluster, workload_traces
    from emulator.reference import parse_reference
    from emulator.synthbuild import build_synthetic_images
    from registry_mock.app import running_registry
    from registry_mock.config import LinkSpec, RegistrySpec
    from registry_mock.importer import import_oci_layout
    from registry_mock.storage import MemoryStorage
    from startup.scenario import OciImageSpec, SyntheticImageSpec
    from startup.scenario_io import scenario_from_dict

    scenario = scenario_from_dict({**config, "seed": seed})
    with tempfile.TemporaryDirectory(prefix="lazylab-emulate-") as tmp:
        work = Path(tmp)
        layouts: dict[str, tuple[Path, str]] = {}
        synthetic = [img for img in scenario.images if isinstance(img, SyntheticImageSpec)]
        if synthetic:
            for name, path in build_synthetic_images(synthetic, work / "images", scenario.seed).items():
                layouts[name] = (path, "latest")
        for img in scenario.images:
            if isinstance(img, OciImageSpec):
                layouts[img.name] = (Path(scenario.resolve_path(img.layout)), img.tag or "latest")
        storage = MemoryStorage()
        for name, (layout, tag) in layouts.items():
            import_oci_layout(layout, f"lab/{name.lower()}", tag, storage)
        traces = workload_traces(scenario, {n: image_files(lay, tag) for n, (lay, tag) in layouts.items()})
        link = LinkSpec(**link_parameters(scenario))  # type: ignore[arg-type]
        with running_registry(RegistrySpec(link=link), storage=storage) as reg:
            refs = {n: parse_reference(f"{reg.address}/lab/{n.lower()}:{tag}")
                    for n, (_, tag) in layouts.items()}
            result = asyncio.run(run_cluster(scenario, refs, traces, work / "nodes"))
            log = reg.records
    timeline = registry_timeline(log, origin_epoch_s=result.origin_epoch_s,
                                 bin_s=scenario.sim.egress_sample_s)
    records = sorted(result.records, key=lambda r: (r.pod, r.node))
    # sim_time_s: the emulated cluster's wall-clock span (the emulator's clock)
    return RunOutput(records=records, tables={"registry_timeline": timeline}, sim_time_s=result.wall_s)


def engine_effective(config: dict[str, Any]) -> dict[str, Any]:
    engine = config.get("engine", "sim")
    return {"engine": engine, **sim_effective({k: v for k, v in config.items() if k != "engine"})}


ENGINES = {"sim": run_sim, "emulator": run_emulator}


def run_engine(config: dict[str, Any], seed: int, calibration: Calibration) -> RunOutput:
    engine = config.get("engine", "sim")
    if engine not in ENGINES:
        raise EngineRunError(f"engine (={engine!r}) must be one of {', '.join(ENGINES)}")
    return ENGINES[engine]({k: v for k, v in config.items() if k != "engine"}, seed, calibration)
