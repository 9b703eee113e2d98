"""Running a sweep: cached tasks are skipped, the rest go to a local process pool or a Dask cluster.

The unit of work is `execute_task(task) -> TaskOutcome`, a top-level function of a picklable
`RunTask`: the local pool (spawn start method) and `dask.distributed` call exactly it, and the
driver alone writes the cache, so workers need no shared filesystem. A run that raises becomes an
outcome with its error and traceback; a worker that dies or a task that cannot be pickled is
recorded the same way; either way the sweep continues.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments.cache import ResultCache, collect
from experiments.codeversion import code_version as compute_code_version
from experiments.framework import Calibration, Experiment, RunOutput, RunResult, RunTask
from startup.record import StartupRecord


@dataclass(frozen=True, kw_only=True)
class TaskOutcome:
    """What a worker sends back: the envelope and the rows (the driver writes them)."""

    result: RunResult
    records: tuple[StartupRecord, ...] = ()
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _failed(task: RunTask, error: str, tb: str, wall_s: float = math.nan) -> TaskOutcome:
    return TaskOutcome(result=RunResult(
        experiment=task.experiment, key=task.key, effective_config=task.config, factors=task.factors,
        seed=task.seed, code_version=task.code_version, calibration_digest=task.calibration.digest,
        error=error, traceback=tb, wall_s=wall_s, finished_utc=_now()))


def execute_task(task: RunTask) -> TaskOutcome:
    """Run one task in this process; never raises for a failure of the run itself."""
    t0 = time.perf_counter()
    try:
        out = task.run(task.config, task.seed, task.calibration)
        if not isinstance(out, RunOutput):
            out = RunOutput(records=tuple(out))
        records = tuple(out.records)
        for r in records:
            if not isinstance(r, StartupRecord):
                raise TypeError(f"run returned a {type(r).__name__}, expected StartupRecord rows")
        tables = {name: [dict(row) for row in rows] for name, rows in out.tables.items()}
    except (Exception, SystemExit) as e:  # a failed run is a result, not a crash of the sweep
        return _failed(task, f"{type(e).__name__}: {e}", traceback.format_exc(), time.perf_counter() - t0)
    wall_s = time.perf_counter() - t0
    result = RunResult(
        experiment=task.experiment, key=task.key, effective_config=task.config, factors=task.factors,
        seed=task.seed, code_version=task.code_version, calibration_digest=task.calibration.digest,
        sim_time_s=float(out.sim_time_s), wall_s=wall_s, n_records=len(records), finished_utc=_now())
    return TaskOutcome(result=result, records=records, tables=tables)


# -- backends: each maps execute_task over tasks and yields (task, outcome) as they finish --------

Backend = Callable[[Sequence[RunTask]], Iterator[tuple[RunTask, TaskOutcome]]]


def inline_backend(tasks: Sequence[RunTask]) -> Iterator[tuple[RunTask, TaskOutcome]]:
    """In this process, one after another (workers=1; debugging)."""
    for task in tasks:
        yield task, execute_task(task)


def process_pool_backend(workers: int) -> Backend:
    """A local pool of `workers` spawned processes (spawn: safe with threads, same as remote)."""

    def backend(tasks: Sequence[RunTask]) -> Iterator[tuple[RunTask, TaskOutcome]]:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        try:
            futures: dict[Future[TaskOutcome], RunTask] = {pool.submit(execute_task, t): t for t in tasks}
            for fut in as_completed(futures):
                yield futures[fut], _outcome_of(futures[fut], fut.result)
        finally:  # on Ctrl-C (or any early exit) drop queued runs; finished ones are already cached
            pool.shutdown(wait=True, cancel_futures=True)

    return backend


def dask_backend(address: str, max_in_flight: int | None = None) -> Backend:
    """A dask.distributed scheduler at `address` (tcp://HOST:PORT); a client per sweep. With
    `max_in_flight`, at most that many runs are submitted at a time (1: one after another)."""

    def backend(tasks: Sequence[RunTask]) -> Iterator[tuple[RunTask, TaskOutcome]]:
        from distributed import Client
        from distributed import as_completed as dask_as_completed

        queue = list(tasks)
        limit = max_in_flight or len(queue) or 1
        with Client(address, set_as_default=False) as client:
            by_key: dict[str, RunTask] = {}

            def submit() -> Any:
                task = queue.pop(0)
                fut = client.submit(execute_task, task, pure=False)
                by_key[fut.key] = task
                return fut

            pending = dask_as_completed([submit() for _ in range(min(limit, len(queue)))], loop=client.loop)
            for fut in pending:
                task = by_key.pop(fut.key)
                if queue:
                    pending.add(submit())
                yield task, _outcome_of(task, fut.result)

    return backend


def _outcome_of(task: RunTask, get: Callable[[], TaskOutcome]) -> TaskOutcome:
    """The future's outcome; an infrastructure failure (dead worker, pickling) becomes a failed run."""
    try:
        return get()
    except Exception as e:
        return _failed(task, f"{type(e).__name__}: {e} (worker failure)", traceback.format_exc())


def choose_backend(*, scheduler: str | None = None, workers: int | None = None,
                   max_in_flight: int | None = None) -> Backend:
    """Dask if a scheduler address is given; else a process pool (default: one per CPU, max 8).
    `max_in_flight` caps concurrent runs (an experiment's `max_parallel`; 1 = one at a time)."""
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"max_in_flight (={max_in_flight}) must be >= 1")
    if scheduler:
        return dask_backend(scheduler, max_in_flight)
    n = workers if workers is not None else min(8, os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"workers (={n}) must be >= 1")
    n = min(n, max_in_flight or n)
    return inline_backend if n == 1 else process_pool_backend(n)


# -- the sweep ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SweepSummary:
    experiment: str
    keys: tuple[str, ...]  # every planned key, in plan order
    cached: int
    ran: int
    failed: int
    results_dir: Path
    message: str = ""  # what the experiment's `after` hook said
    first_error: str = ""  # the error of the first run that failed in this sweep

    @property
    def total(self) -> int:
        return len(self.keys)


def execution_order(name: str, tasks: Sequence[RunTask]) -> list[RunTask]:
    """`tasks` in a random order that depends only on `name` and the tasks' keys (reproducible)."""
    ordered = sorted(tasks, key=lambda t: t.key)
    random.Random(f"run-order:{name}").shuffle(ordered)
    return ordered


def run_sweep(
    experiment: Experiment,
    *,
    results_dir: str | Path = "results",
    calibration: Calibration | None = None,
    backend: Backend | None = None,
    code_version: str | None = None,
    accept_failed: bool = False,
    progress: bool = True,
) -> SweepSummary:
    """Plan, skip cached keys, execute the rest on `backend`, write each outcome as it arrives,
    then call the experiment's `after` hook (if any) on the successful cached runs."""
    cache = ResultCache(results_dir)
    cal = calibration or Calibration.none()
    version = code_version or compute_code_version(experiment.code_packages, extra=(experiment.run,))
    tasks = experiment.plan(cal, version)
    pending = [t for t in tasks if not cache.is_cached(experiment.name, t.key, accept_failed=accept_failed)]
    if experiment.shuffle_runs:
        pending = execution_order(experiment.name, pending)
    ran = failed = 0
    first_error = ""
    with _progress(progress, experiment.name, len(tasks), len(tasks) - len(pending)) as advance:
        for _task, outcome in (backend or inline_backend)(pending) if pending else ():
            cache.store(outcome.result, outcome.records, outcome.tables)
            ran += 1
            failed += not outcome.result.ok
            first_error = first_error or outcome.result.error
            advance(outcome.result.ok)
    message = ""
    if experiment.after is not None:
        message = experiment.after(collect(experiment, cache, cal, version).ok)
    return SweepSummary(experiment=experiment.name, keys=tuple(t.key for t in tasks),
                        cached=len(tasks) - len(pending), ran=ran, failed=failed,
                        results_dir=Path(results_dir), message=message,
                        first_error=first_error)


class _progress:
    """A rich progress bar (or nothing); `advance(ok)` counts one finished run."""

    def __init__(self, enabled: bool, name: str, total: int, done: int) -> None:
        self.enabled, self.name, self.total, self.done = enabled, name, total, done
        self.failed = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[bool], None]:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.name, total=self.total, completed=self.done,
                                            status=f"{self.done} cached, 0 failed")
        return self.advance

    def advance(self, ok: bool) -> None:
        self.failed += not ok
        if self._bar is not None:
            self._bar.update(self._task, advance=1, status=f"{self.done} cached, {self.failed} failed")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
