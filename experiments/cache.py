"""The results cache: `results/<experiment>/<key>/` holds one run.

    config.toml   the effective config (what the run received), plus seed and factors in a table
    records.csv   the StartupRecord rows (startup/record.py)
    <table>.csv   extra row sets the run returned (RunOutput.tables)
    result.json   the RunResult envelope; written last, also when the run failed (error + traceback)

A run directory is built under a temporary name and renamed into place, so a key directory with a
result.json is always complete. A finished key is a cache hit; a failed one is re-run unless the
caller accepts failures as final.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from experiments.config import canonical_json
from experiments.errors import ResultsError
from experiments.framework import Calibration, Experiment, RunData, RunResult
from startup.record import StartupRecord, read_csv, write_csv

RESULT_FILE = "result.json"
CONFIG_FILE = "config.toml"
RECORDS_FILE = "records.csv"


class ResultCache:
    """Run directories of one results root, addressed by experiment name and run key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def run_dir(self, experiment: str, key: str) -> Path:
        return self.root / experiment / key

    def load_result(self, experiment: str, key: str) -> RunResult | None:
        """The run's envelope, or None if the key has not finished (or is unreadable)."""
        path = self.run_dir(experiment, key) / RESULT_FILE
        try:
            return RunResult.from_json_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def is_cached(self, experiment: str, key: str, *, accept_failed: bool = False) -> bool:
        result = self.load_result(experiment, key)
        return result is not None and (result.ok or accept_failed)

    def store(self, result: RunResult, records: Sequence[StartupRecord],
              tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> Path:
        """Write one run (atomically replacing an older attempt with the same key)."""
        final = self.run_dir(result.experiment, result.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{result.key[:16]}.", dir=final.parent))
        try:
            config_doc = {"seed": result.seed, "factors": result.factors, "config": result.effective_config}
            (tmp / CONFIG_FILE).write_text(tomli_w.dumps(config_doc))
            write_csv(records, tmp / RECORDS_FILE)
            for name, rows in (tables or {}).items():
                _write_rows(rows, tmp / f"{name}.csv")
            (tmp / RESULT_FILE).write_text(json.dumps(result.to_json_dict(), indent=2, sort_keys=True))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def load(self, experiment: str, key: str) -> RunData:
        """A finished run with its records and extra tables."""
        d = self.run_dir(experiment, key)
        result = self.load_result(experiment, key)
        if result is None:
            raise ResultsError(f"no finished run {key[:12]} of experiment {experiment!r} under {self.root}")
        records: tuple[StartupRecord, ...] = ()
        if (d / RECORDS_FILE).exists():
            records = tuple(read_csv(d / RECORDS_FILE))
        tables = {p.stem: _read_rows(p) for p in sorted(d.glob("*.csv")) if p.name != RECORDS_FILE}
        return RunData(result=result, records=records, tables=tables)

    def results(self, experiment: str) -> Iterator[RunResult]:
        """Every finished envelope of an experiment, any code version or calibration."""
        base = self.root / experiment
        if not base.is_dir():
            return
        for d in sorted(base.iterdir()):
            if d.is_dir() and not d.name.startswith("."):
                r = self.load_result(experiment, d.name)
                if r is not None:
                    yield r


@dataclass(frozen=True, kw_only=True)
class CachedRuns:
    """What the cache holds for a plan."""

    runs: tuple[RunData, ...]  # finished (ok or failed), plan order
    planned: int
    exact: int  # found under the current key
    older: int  # found with another code version / calibration
    missing: int

    @property
    def ok(self) -> tuple[RunData, ...]:
        return tuple(r for r in self.runs if r.ok)

    @property
    def failed(self) -> tuple[RunData, ...]:
        return tuple(r for r in self.runs if not r.ok)


def collect(exp: Experiment, cache: ResultCache, calibration: Calibration, code_version: str) -> CachedRuns:
    """The cached runs of `exp`'s plan, in plan order; nothing is run.

    Each planned (config, seed) is looked up by its current key; when the code or calibration
    changed since, the newest cached run of the same effective config and seed stands in and is
    counted as `older`.
    """
    tasks = exp.plan(calibration, code_version)
    by_config: dict[tuple[str, int], RunResult] = {}
    for r in cache.results(exp.name):
        k = (canonical_json(r.effective_config), r.seed)
        if k not in by_config or r.finished_utc > by_config[k].finished_utc:
            by_config[k] = r
    runs: list[RunData] = []
    exact = older = 0
    for t in tasks:
        if cache.load_result(exp.name, t.key) is not None:
            runs.append(cache.load(exp.name, t.key))
            exact += 1
            continue
        alt = by_config.get((canonical_json(t.config), t.seed))
        if alt is not None:
            runs.append(cache.load(exp.name, alt.key))
            older += 1
    return CachedRuns(runs=tuple(runs), planned=len(tasks), exact=exact, older=older,
                      missing=len(tasks) - exact - older)


def _write_rows(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
