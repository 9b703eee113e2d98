"""One simulation run: build -> run -> collect -> `SimRun` (records, series, `RunResult`).

A run that fails (bad image, unreadable trace or params, a model error) still returns a
`RunResult` with the error and the effective config; `write_run` writes it either way.
Randomness: `SeedSequence(scenario.seed).spawn(n)` per component (scenarios.build_world).
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sim.image import ImageError
from sim.output import (
    EgressSeries,
    NodeCpu,
    RunResult,
    prometheus_text,
    write_egress,
    write_node_cpu,
    write_records,
    write_result,
)
from sim.params import CalibratedParams, ParamsError, load_params
from sim.scenarios import World, build_world
from startup.record import StartupRecord
from startup.scenario import Scenario
from startup.scenario_io import effective_config, write_effective_config
from startup.trace import TraceError

BUILD_ERRORS = (ImageError, TraceError, ParamsError, OSError)


@functools.cache
def code_version() -> str:
    """`git describe` of the checkout (with -dirty), else the package version."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("lazylab")
        except PackageNotFoundError:
            return "unknown"


@dataclass
class SimRun:
    result: RunResult
    records: list[StartupRecord] = field(default_factory=list)
    egress: list[EgressSeries] = field(default_factory=list)
    node_cpu: list[NodeCpu] = field(default_factory=list)


def _collect(scenario: Scenario, world: World) -> tuple[list[StartupRecord], list[NodeCpu]]:
    horizon = scenario.sim.horizon_s
    records: list[StartupRecord] = []
    for node, pod in world.pods:
        error = pod.error
        if not error and pod.ready_s != pod.ready_s:  # NaN: never became ready
            error = f"not ready by the horizon ({horizon:g} s)"
        for member, name in zip(node.members, pod.pod_names, strict=True):
            records.append(
                StartupRecord(
                    engine="sim",
                    scenario=scenario.name,
                    seed=scenario.seed,
                    node=member,
                    pod=name,
                    image=pod.image,
                    mode=pod.mode,
                    submitted_s=pod.submitted_s,
                    resolved_s=pod.resolved_s,
                    pulled_s=pod.pulled_s,
                    created_s=pod.created_s,
                    ready_s=pod.ready_s,
                    bytes_manifest=pod.bytes_manifest,
                    bytes_toc=pod.bytes_toc,
                    bytes_layers=pod.bytes_layers,
                    bytes_on_demand=pod.bytes_on_demand,
                    bytes_prefetch=pod.bytes_prefetch,
                    bytes_background=pod.bytes_background,
                    bytes_reused=pod.bytes_reused,
                    requests=pod.requests,
                    ranges=pod.ranges,
                    cache_hits=pod.cache_hits,
                    cache_misses=pod.cache_misses,
                    fuse_ops=pod.fuse_ops,
                    fuse_cpu_s=pod.fuse_cpu_s,
                    error=error,
                )
            )
    records.sort(key=lambda r: (r.pod, r.node))
    cpu = [NodeCpu(node=m, fuse_cpu_s=n.fuse_cpu_s, cpu_s=n.cpu_s, compute_s=n.compute_s)
           for n in world.nodes for m in n.members]
    cpu.sort(key=lambda c: c.node)
    return records, cpu


def run_scenario(
    scenario: Scenario,
    *,
    params: CalibratedParams | None = None,
    calibration_digest: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> SimRun:
    """Simulate `scenario`; `params` overrides `scenario.sim.params_file`. Never raises for bad input."""
    t0 = time.perf_counter()
    config = effective_config(scenario)
    envelope = functools.partial(
        RunResult, effective_config=config, seed=scenario.seed, code_version=code_version()
    )
    try:
        if params is None:
            params, calibration_digest = load_params(scenario.resolve_path(scenario.sim.params_file) or None)
        done = [0]
        total = [0]

        def on_done(weight: int) -> None:
            done[0] += weight
            if progress is not None:
                progress(done[0], total[0])

        world = build_world(scenario, params, on_done)
        total[0] = world.total_pods
        series = [EgressSeries(r.name, scenario.sim.egress_sample_s) for r in world.registries]
        for r, s in zip(world.registries, series, strict=True):
            r.endpoint.on_rate = s.add
        env, horizon = world.env, scenario.sim.horizon_s
        t_loop = time.perf_counter()
        while env.peek() <= horizon:  # stop at the last event, or at the horizon
            env.step()
        loop_s = time.perf_counter() - t_loop
        total[0] = world.total_pods
        records, cpu = _collect(scenario, world)
        eid = getattr(world.env, "_eid", None)
        events = next(eid) if eid is not None else 0
        result = envelope(
            calibration_digest=calibration_digest,
            error="",
            sim_time_s=float(world.env.now),
            wall_s=time.perf_counter() - t0,
            events=events,
            loop_wall_s=loop_s,
            cohorts=len(world.nodes),
            peak_egress_bytes_per_s=max(r.endpoint.peak_rate for r in world.registries),
            bytes_from_registry=sum(r.stats.bytes for r in world.registries),
            notes=tuple(world.notes),
        )
        return SimRun(result, records, series, cpu)
    except BUILD_ERRORS as e:
        msg = str(e) if not isinstance(e, OSError) else f"{e.filename}: {e.strerror}"
        return SimRun(
            envelope(
                calibration_digest=calibration_digest,
                error=msg,
                sim_time_s=0.0,
                wall_s=time.perf_counter() - t0,
            )
        )


def write_run(run: SimRun, scenario: Scenario, out_dir: str | Path, *, prometheus: bool = False) -> Path:
    """Write effective.toml, result.json, records.csv, egress.csv, node_cpu.csv (+ metrics.prom)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    write_effective_config(scenario, d / "effective.toml")
    write_result(run.result, d / "result.json")
    write_records(run.records, d / "records.csv")
    write_egress(run.egress, d / "egress.csv")
    write_node_cpu(run.node_cpu, d / "node_cpu.csv")
    if prometheus:
        (d / "metrics.prom").write_text(prometheus_text(run.records))
    return d
