"""`lazylab experiment list | run NAME | report NAME`: declared studies, cached sweeps, reports."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments import registry
from experiments.calibration_file import load_calibration
from experiments.errors import ExperimentError
from experiments.executor import choose_backend, run_sweep
from experiments.framework import Calibration, Experiment
from experiments.report import write_report
from lazylab.cli import USER_ERRORS, CliError

USER_ERRORS.append(ExperimentError)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("experiment", help="run declared experiments (cached sweeps) and write reports")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    ls = verbs.add_parser("list", help="the registered experiments")
    ls.set_defaults(func=_list)

    run = verbs.add_parser("run", help="run an experiment's sweep (finished runs are reused)")
    run.add_argument("name")
    _common(run)
    run.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler (tcp://HOST:PORT)")
    run.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: CPUs, max 8)")
    run.add_argument("--accept-failed", action="store_true", help="treat cached failures as final")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    rep = verbs.add_parser("report",
                           help="write reports/NAME.md (--quick: NAME-quick.md) from cached results only")
    rep.add_argument("name")
    _common(rep)
    rep.add_argument("--reports", default="reports", metavar="DIR",
                     help="report directory (default: reports)")
    rep.set_defaults(func=_report)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="the small variant (CI, smoke tests)")
    p.add_argument("--results", default="results", metavar="DIR", help="results cache (default: results)")
    p.add_argument("--params", metavar="FILE", help="calibrated params file (default: the committed one)")


def _experiment(args: argparse.Namespace) -> tuple[Experiment, Calibration]:
    exp = registry.get(args.name)
    if args.quick:
        exp = exp.quick_variant()
    cal = load_calibration(args.params) if exp.uses_calibration else Calibration.none()
    return exp, cal


def _list(args: argparse.Namespace) -> int:
    for name in registry.names():
        exp = registry.get(name)
        runs = len(exp.points()) * exp.replications
        quick = exp.quick_variant()
        qruns = len(quick.points()) * quick.replications
        summary = exp.description.splitlines()[0] if exp.description else ""
        print(f"{name:<20} {runs:>6} runs ({qruns} quick)  {summary}")
    return 0


def _run(args: argparse.Namespace) -> int:
    exp, cal = _experiment(args)
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers (={args.workers}) must be >= 1")
    backend = choose_backend(scheduler=args.scheduler, workers=args.workers, max_in_flight=exp.max_parallel)
    s = run_sweep(exp, results_dir=args.results, calibration=cal, backend=backend,
                  accept_failed=args.accept_failed, progress=not args.no_progress)
    print(f"{exp.name}: {s.total} runs, {s.cached} cached, {s.ran} ran, {s.failed} failed; "
          f"results in {Path(args.results) / exp.name}")
    if s.first_error:
        print(f"first failure: {s.first_error.splitlines()[0]} (tracebacks in each run's result.json)")
    if s.message:
        print(s.message)
    return 1 if s.failed else 0


def _report(args: argparse.Namespace) -> int:
    exp, cal = _experiment(args)
    stem = f"{exp.name}-quick" if args.quick else exp.name  # a smoke run never overwrites the real report
    path = write_report(exp, results_dir=args.results, reports_dir=args.reports, calibration=cal, stem=stem)
    print(f"wrote {path}")
    return 0
