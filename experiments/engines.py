"""How the engines plug into experiments: run functions `(config, seed, calibration) -> RunOutput`.

- `run_sim`: the config is a scenario (startup/scenario.py, the TOML loader's dict form); the
  seed replaces `seed`; the calibration's fitted params become the simulator's
  `CalibratedParams`; sim.run.run_scenario runs it. A run the simulator reports as failed raises
  `EngineRunError`, so the framework records it as a failed run.
- `sim_effective`: the `effective` hook for scenario configs: every default spelled out, `seed`
  dropped (the framework owns seeds), so equal scenarios get equal run keys.
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
