"""Declaring an experiment: base config x factors x replications -> run tasks with stable keys.

    EXPERIMENT = Experiment(
        name="rtt-sweep",
        base={"registry": {"rtt_s": 0.001}, "mode": "lazy"},
        factors={"registry.rtt_s": [0.001, 0.05], "mode": ["full", "lazy"]},
        replications=3,
        run=run_sim,          # top-level function: (config, seed, calibration) -> records
        tabulate=my_tables,   # pure: Sequence[RunData] -> Sequence[Table]
        plot=my_plots,        # pure: Sequence[RunData] -> Sequence[Plot]
    )

A run's key is the sha256 of the canonical JSON of {config, seed, calibration digest, code
version} (`run_key`), so any change of any of them is a new run and everything else is reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from experiments.config import Config, canonical_json, check_key, check_value, expand_factors, with_overrides
from experiments.errors import ConfigError
from startup.record import StartupRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NO_CALIBRATION = "none"


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """The calibrated parameters a run sees, and the digest of the file they came from.

    `params` is the fitted-parameters object (see experiments/calibration.py); `digest` is the
    sha256 of the params file and goes into every run key of experiments that use calibration.
    """

    digest: str
    params: Any = None
    path: str = ""

    @classmethod
    def none(cls) -> Calibration:
        """For experiments that do not depend on calibration (e.g. the calibration itself)."""
        return cls(digest=NO_CALIBRATION)


@dataclass(frozen=True, kw_only=True)
class RunOutput:
    """What a run function may return instead of a bare list of records.

    `tables` are extra named row sets (written as `<name>.csv`), e.g. calibration measurements or
    a registry egress series; `sim_time_s` is the simulated clock at the end (NaN if none).
    """

    records: Sequence[StartupRecord] = ()
    tables: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    sim_time_s: float = math.nan

    def __post_init__(self) -> None:
        for name in self.tables:
            if not name.isidentifier() or name == "records":
                raise ValueError(f"table name (={name!r}) must be an identifier other than 'records'")


RunFn = Callable[[Config, int, Calibration], "Sequence[StartupRecord] | RunOutput"]


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """The envelope of one run (result.json), written whether the run succeeded or failed."""

    experiment: str
    key: str
    effective_config: Config
    factors: dict[str, Any]
    seed: int
    code_version: str
    calibration_digest: str
    error: str = ""
    traceback: str = ""
    sim_time_s: float = math.nan
    wall_s: float = math.nan
    n_records: int = 0
    finished_utc: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def to_json_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("sim_time_s", "wall_s"):
            if isinstance(d[k], float) and not math.isfinite(d[k]):
                d[k] = None
        return d

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> RunResult:
        kw = dict(d)
        for k in ("sim_time_s", "wall_s"):
            if kw.get(k) is None:
                kw[k] = math.nan
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kw.items() if k in names})


@dataclass(frozen=True, kw_only=True)
class RunData:
    """One cached run as `tabulate` and `plot` see it."""

    result: RunResult
    records: tuple[StartupRecord, ...] = ()
    tables: Mapping[str, Sequence[Mapping[str, str]]] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return self.result.effective_config

    @property
    def factors(self) -> dict[str, Any]:
        return self.result.factors

    @property
    def seed(self) -> int:
        return self.result.seed

    @property
    def ok(self) -> bool:
        return self.result.ok


@dataclass(frozen=True, kw_only=True)
class Table:
    """A result table; `to_markdown` renders it for reports."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {i} has {len(row)} cells, table {self.title!r} has "
                                 f"{len(self.columns)} columns")

    def to_markdown(self) -> str:
        def cell(v: Any) -> str:
            if isinstance(v, float):
                return "n/a" if math.isnan(v) else f"{v:.4g}"
            return str(v).replace("|", "\\|")

        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(cell(c) for c in self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True)
class Plot:
    """A figure for a report, saved as reports/<experiment>-<name>.png."""

    name: str
    figure: Figure
    caption: str = ""

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"plot name (={self.name!r}) must be letters, digits, '-' or '_'")


def _no_tables(runs: Sequence[RunData]) -> Sequence[Table]:
    return ()


def _no_plots(runs: Sequence[RunData]) -> Sequence[Plot]:
    return ()


def _identity(config: Config) -> Config:
    return config


def run_key(config: Mapping[str, Any], seed: int, calibration_digest: str, code_version: str) -> str:
    """sha256 hex of the canonical JSON of everything a run's outcome depends on."""
    doc = {"config": config, "seed": seed, "calibration": calibration_digest, "code": code_version}
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class RunTask:
    """One unit of work: picklable (the run function is pickled by reference), self-contained."""

    experiment: str
    key: str
    run: RunFn
    config: Config
    factors: dict[str, Any]
    seed: int
    calibration: Calibration
    code_version: str


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """A declared study. `run`, `tabulate`, `plot` and `effective` must be top-level functions.

    - `base`: nested config; `factors`: {dotted key: levels}, expanded as a cross product.
    - `replications`: seeds `first_seed .. first_seed + replications - 1` per factor point.
    - `effective`: normalises a config (e.g. fills the engine's defaults) before keying; the
      effective config is what the run receives and what `config.toml` records.
    - `after`: called by `run_sweep` once the sweep is done, with the successful cached runs of
      the plan; for side effects such as writing the calibration params file; returns a message.
    - `max_parallel`: at most this many runs at once on any backend (1 for wall-clock
      measurements, which concurrent runs would distort); None = as many as workers.
    - `shuffle_runs`: execute the pending runs in a random order (fixed per experiment name), not
      plan order — for wall-clock measurements on a host whose speed drifts over minutes: in plan
      order a point's seeds (and a mode's points) run back to back, so a slow phase of the host
      biases them together and looks like a real difference; shuffled, it spreads over the plan
      as noise that the seeds' spread shows.
    - `uses_calibration`: False keys runs on "none" instead of the calibration digest.
    - `quick_*`: the `--quick` variant (fewer levels/seeds, smaller base via dotted overrides).
    - `code_packages`: packages whose sources define `code_version` (see experiments/codeversion.py).
    """

    name: str
    run: RunFn
    base: Mapping[str, Any] = field(default_factory=dict)
    factors: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    replications: int = 1
    first_seed: int = 0
    tabulate: Callable[[Sequence[RunData]], Sequence[Table]] = _no_tables
    plot: Callable[[Sequence[RunData]], Sequence[Plot]] = _no_plots
    effective: Callable[[Config], Config] = _identity
    after: Callable[[Sequence[RunData]], str] | None = None
    max_parallel: int | None = None
    shuffle_runs: bool = False
    description: str = ""
    uses_calibration: bool = True
    quick_factors: Mapping[str, Sequence[Any]] | None = None
    quick_replications: int | None = None
    quick_overrides: Mapping[str, Any] = field(default_factory=dict)
    code_packages: tuple[str, ...] = ("sim", "emulator", "registry_mock", "imageformat", "startup",
                                      "nodeconfig")

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ConfigError(f"experiment name (={self.name!r}) must be letters, digits, '-' or '_'")
        if self.replications < 1:
            raise ConfigError(f"replications (={self.replications}) must be >= 1")
        if self.quick_replications is not None and self.quick_replications < 1:
            raise ConfigError(f"quick_replications (={self.quick_replications}) must be >= 1")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ConfigError(f"max_parallel (={self.max_parallel}) must be >= 1 or None")
        if self.first_seed < 0:
            raise ConfigError(f"first_seed (={self.first_seed}) must be >= 0")
        check_value(dict(self.base), "base")
        for factors in (self.factors, self.quick_factors or {}):
            for key, levels in factors.items():
                check_key(key)
                if isinstance(levels, str | bytes) or len(levels) == 0:
                    raise ConfigError(f"factor {key!r} must have a non-empty list of levels")
                check_value(list(levels), key)
        for key in self.quick_overrides:
            check_key(key)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.first_seed, self.first_seed + self.replications))

    def points(self) -> list[dict[str, Any]]:
        """The factor points, in plan order."""
        return expand_factors(self.factors)

    def quick_variant(self) -> Experiment:
        """The `--quick` version: quick factors/replications/overrides in place of the full ones."""
        return dataclasses.replace(
            self,
            base=with_overrides(self.base, self.quick_overrides),
            factors=self.factors if self.quick_factors is None else self.quick_factors,
            replications=self.replications if self.quick_replications is None else self.quick_replications,
            quick_factors=None, quick_replications=None, quick_overrides={},
        )

    def plan(self, calibration: Calibration, code_version: str) -> list[RunTask]:
        """Every (factor point, seed) as a keyed task, in plan order; duplicates are dropped."""
        digest = calibration.digest if self.uses_calibration else NO_CALIBRATION
        cal = calibration if self.uses_calibration else Calibration.none()
        tasks: list[RunTask] = []
        seen: set[str] = set()
        for point in self.points():
            config = self.effective(with_overrides(self.base, point))
            check_value(config, "effective config")
            for seed in self.seeds:
                key = run_key(config, seed, digest, code_version)
                if key in seen:
                    continue
                seen.add(key)
                tasks.append(RunTask(experiment=self.name, key=key, run=self.run, config=config,
                                     factors=dict(point), seed=seed, calibration=cal,
                                     code_version=code_version))
        return tasks
