"""`lazylab simulate SCENARIO.toml [--set key=value ...] [--seeds N] [--modes M,...] [-o DIR]`.

Runs the scenario once per seed (seed, seed+1, ...) and per mode, shows a progress bar, prints
p50/p95/p99 time-to-ready per mode with 95% CIs across seeds, bytes from the registry and the
registry's peak egress, and (with -o) writes every run under DIR/<mode>/seed-<n>/.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from lazylab.cli import USER_ERRORS, CliError
from sim.image import ImageError
from sim.params import ParamsError, load_params
from sim.run import SimRun, run_scenario, write_run
from startup.metrics import MeanCI, ModeSummary, summarize_run, summarize_seeds
from startup.modes import PullMode
from startup.scenario import ScenarioError
from startup.scenario_io import dumps_effective_config, load_scenario
from startup.trace import TraceError

for _err in (ScenarioError, ParamsError, ImageError, TraceError):
    if _err not in USER_ERRORS:
        USER_ERRORS.append(_err)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "simulate",
        help="run a scenario in the discrete-event simulator",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("scenario", help="scenario TOML file (see scenarios/)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key (dotted path, e.g. cluster.nodes=100); repeatable",
    )
    p.add_argument("--seeds", type=int, default=1, help="number of seeds: seed, seed+1, ... (default 1)")
    p.add_argument(
        "--modes", default="", help="comma-separated pull modes to compare (default: the scenario's)"
    )
    p.add_argument("--params", default="", help="CalibratedParams file (overrides sim.params_file)")
    p.add_argument("-o", "--output", default="", help="directory for effective config, records and series")
    p.add_argument("--prometheus", action="store_true", help="also write metrics.prom (kubelet histograms)")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective config (every default spelled out) and exit",
    )
    p.set_defaults(func=run)


def _fmt_ci(ci: MeanCI, scale: float = 1.0, digits: int = 2) -> str:
    if ci.n == 0:
        return "-"
    if ci.n == 1 or ci.low != ci.low:
        return f"{ci.mean / scale:.{digits}f}"
    return f"{ci.mean / scale:.{digits}f} ± {ci.half_width / scale:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise CliError(f"--seeds (={args.seeds}) must be >= 1")
    base = load_scenario(args.scenario, overrides=args.overrides)
    if args.print_config:
        print(dumps_effective_config(base), end="")
        return 0
    try:
        modes = [PullMode.parse(m.strip()) for m in args.modes.split(",") if m.strip()] or [base.mode]
    except ValueError as e:
        raise CliError(f"--modes: {e}") from None
    params, digest = load_params(args.params or base.resolve_path(base.sim.params_file) or None)
    console = Console(stderr=True)
    runs: dict[PullMode, list[SimRun]] = {m: [] for m in modes}
    failures: list[str] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        overall = progress.add_task("runs", total=len(modes) * args.seeds)
        for mode in modes:
            for i in range(args.seeds):
                scenario = dataclasses.replace(base, mode=mode, seed=base.seed + i)
                task = progress.add_task(f"{mode.value} seed {scenario.seed}: pods", total=None)

                def tick(done: int, total: int, task: TaskID = task) -> None:
                    if done % 64 == 0 or done == total:
                        progress.update(task, completed=done, total=total)

                result = run_scenario(scenario, params=params, calibration_digest=digest, progress=tick)
                progress.remove_task(task)
                progress.advance(overall)
                runs[mode].append(result)
                if result.result.error:
                    failures.append(f"{mode.value} seed {scenario.seed}: {result.result.error}")
                if args.output:
                    write_run(
                        result,
                        scenario,
                        Path(args.output) / mode.value / f"seed-{scenario.seed}",
                        prometheus=args.prometheus,
                    )
    _print_summary(runs, Console(width=max(Console().width, 132)))
    for f in failures:
        console.print(f"[red]run failed[/red]: {f}")
    if failures and all(r.result.error for rs in runs.values() for r in rs):
        raise CliError(failures[0])
    return 1 if failures else 0


def _print_summary(runs: dict[PullMode, list[SimRun]], console: Console) -> None:
    table = Table(title="time to ready (s): mean over seeds ± 95% CI")
    for col in (
        "mode",
        "seeds",
        "pods",
        "failed",
        "p50",
        "p95",
        "p99",
        "from registry (MB)",
        "peak egress (MB/s)",
    ):
        table.add_column(col, justify="right" if col != "mode" else "left")
    for mode, rs in runs.items():
        ok = [r for r in rs if not r.result.error]
        if not ok:
            table.add_row(mode.value, str(len(rs)), "-", "-", "-", "-", "-", "-", "-")
            continue
        per_seed = [summarize_run(r.records, mode) for r in ok]
        s: ModeSummary = summarize_seeds(per_seed)
        peak = max(r.result.peak_egress_bytes_per_s for r in ok)
        reg = sum(r.result.bytes_from_registry for r in ok) / len(ok)
        table.add_row(
            mode.value,
            str(s.seeds),
            str(per_seed[0].pods),
            str(s.failed),
            _fmt_ci(s.ttr_p50_s),
            _fmt_ci(s.ttr_p95_s),
            _fmt_ci(s.ttr_p99_s),
            f"{reg / 1e6:,.1f}",
            f"{peak / 1e6:,.1f}",
        )
    console.print(table)
