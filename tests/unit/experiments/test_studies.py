"""The six studies: each `--quick` variant runs on the simulator, tabulates the expected columns,
plots, and writes a report; plus the pure pieces the studies rely on (names, cases, capacity)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from experiments import registry
from experiments.cache import ResultCache
from experiments.calibration_file import load_calibration
from experiments.executor import inline_backend, run_sweep
from experiments.framework import Calibration, RunData
from experiments.report import write_report
from experiments.study_2_registry_capacity import capacity
from experiments.study_common import apply_case, parse_real, resolve_names

STUDIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "study_1_startup_gain": ("speed-up", ("case", "partial", "lazy", "lazy+prefetch", "lazy-prefetch")),
    "study_2_registry_capacity": (
        "largest rollout",
        ("registry egress", "RTT ms", "mode", "SLO 10 s", "SLO 30 s", "SLO 60 s"),
    ),
    "study_3_fuse_overhead": (
        "warm replay",
        (
            "case",
            "full s",
            "lazy s",
            "lazy+passthrough s",
            "FUSE / local",
            "passthrough / local",
            "FUSE CPU s",
            "FUSE ops",
        ),
    ),
    "study_4_prefetch": (
        "prefetch kind",
        ("study.image", "study.prefetch", "pull.lazy_granularity", "seeds", "ready s"),
    ),
    "study_5_high_latency": (
        "time to ready",
        (
            "case",
            "link",
            "RTT ms",
            "full",
            "partial",
            "lazy",
            "lazy-prefetch",
            "full/lazy",
            "full/lazy-prefetch",
            "lazy run RTT-bound",
        ),
    ),
    "study_6_pool_toggle": (
        "the change",
        (
            "direction",
            "nodes",
            "max unavailable",
            "seeds",
            "rollout s",
            "re-pull GB",
            "of which before ready GB",
            "initial pull GB",
            "pod start p50 s",
            "pod start p95 s",
        ),
    ),
}


def _check_startup_gain(runs: list[RunData]) -> None:
    by = {(r.factors["study.case"], r.factors["mode"]): r.records[0] for r in runs}
    for case in ("syn-250MB-ws6.4", "real-python-import"):
        full, lazy = by[(case, "full")], by[(case, "lazy")]
        assert lazy.pull_s < full.pull_s / 5  # lazy "pull" is the TOC only
        assert lazy.bytes_on_demand > 0 and full.bytes_layers > lazy.bytes_on_demand


def _check_fuse(runs: list[RunData]) -> None:
    warm = {r.factors["study.variant"]: next(x for x in r.records if x.pod == "pod-00001") for r in runs}
    assert warm["full"].run_s < warm["lazy+passthrough"].run_s < warm["lazy"].run_s
    assert warm["lazy+passthrough"].fuse_ops < warm["lazy"].fuse_ops


def _check_toggle(runs: list[RunData]) -> None:
    from experiments.study_6_pool_toggle import initial_bytes, repull_bytes

    by = {r.factors["study.direction"]: r for r in runs}
    assert repull_bytes(by["on"]) == 0  # fully pulled images survive check-layer-state
    assert repull_bytes(by["off"]) == pytest.approx(initial_bytes(by["off"]), rel=0.01)  # re-pulled in full


CHECKS: dict[str, Callable[[list[RunData]], None]] = {
    "study_1_startup_gain": _check_startup_gain,
    "study_3_fuse_overhead": _check_fuse,
    "study_6_pool_toggle": _check_toggle,
}


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "experiments" / "params" / "default.toml"
    return load_calibration(path) if path.is_file() else Calibration(digest="defaults")


def test_every_study_is_registered_with_its_name():
    for name in STUDIES:
        assert registry.get(name).name == name


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_quick_variant_runs_tabulates_plots_and_reports(name, tmp_path, calibration):
    quick = registry.get(name).quick_variant()
    s = run_sweep(
        quick, results_dir=tmp_path / "r", calibration=calibration, backend=inline_backend, progress=False
    )
    assert s.failed == 0, s.first_error
    assert s.ran == len(quick.points()) * quick.replications
    cache = ResultCache(tmp_path / "r")
    runs = [cache.load(name, k) for k in s.keys]
    assert all(r.ok and r.records for r in runs)
    tables = quick.tabulate(runs)
    assert tables[0].title == "Question and answer" and tables[0].note.startswith("**Q:**")
    title, columns = STUDIES[name]
    table = next(t for t in tables if title in t.title.lower())
    assert table.columns[: len(columns)] == columns
    assert table.rows, f"{table.title} has no rows"
    assert quick.plot(runs)
    CHECKS.get(name, lambda runs: None)(runs)
    md = write_report(
        quick, results_dir=tmp_path / "r", reports_dir=tmp_path / "rep", calibration=calibration
    )
    text = md.read_text()
    assert "**Q:**" in text and "Failed runs" not in text


def test_real_image_and_trace_names_resolve_to_paths():
    assert parse_real("real:python@estargz+python_version") == ("python", "estargz", "python_version")
    assert parse_real("real:debian") == ("debian", "zstd:chunked", "")
    cfg: dict[str, Any] = {
        "images": [{"kind": "synthetic", "name": "a", "layers": [{"name": "l"}]}],
        "workload": {"kind": "trace", "path": "trace:python_version"},
    }
    out = resolve_names(cfg)
    assert out["workload"]["path"].endswith("experiments/traces/python_version.jsonl")
    assert out["images"] == cfg["images"] and cfg["workload"]["path"] == "trace:python_version"  # not mutated


def test_cases_are_spelled_out_in_the_effective_config():
    from experiments.study_1_startup_gain import BASE, CASES, effective

    eff = effective({**BASE, "study": {"case": "syn-1GB-ws6.4"}})
    assert eff["images"][0]["layers"][0]["total_bytes"] == 1_000_000_000
    assert eff["workload"]["working_set_fraction"] == 0.064
    assert eff["study"] == {"case": "syn-1GB-ws6.4", "pull_variant": "full"}
    assert effective(eff) == eff  # idempotent: same key whoever computes it
    with pytest.raises(KeyError, match=r"study\.case"):
        apply_case({**BASE, "study": {"case": "nope"}}, CASES)


def test_capacity_is_the_largest_rollout_before_the_first_miss():
    from experiments.framework import RunResult
    from startup.modes import PullMode
    from startup.record import StartupRecord

    def run(n: int, ready: float) -> RunData:
        cfg = {
            "cluster": {"rtt_s": 0.002},
            "registry": {"egress_bandwidth_bytes_per_s": 1.25e9},
            "mode": "full",
        }
        rec = StartupRecord(
            engine="sim",
            scenario="s",
            seed=0,
            node="n",
            pod="p",
            image="i",
            mode=PullMode.FULL,
            submitted_s=0.0,
            resolved_s=0.0,
            pulled_s=ready,
            created_s=ready,
            ready_s=ready,
        )
        res = RunResult(
            experiment="e",
            key=str(n),
            effective_config=cfg,
            factors={"study.nodes": n, "mode": "full", "cluster.rtt_s": 0.002},
            seed=0,
            code_version="c",
            calibration_digest="d",
        )
        return RunData(result=res, records=(rec,))

    runs = [run(10, 5.0), run(100, 20.0), run(1000, 40.0), run(2000, 25.0)]
    assert capacity(runs, 30.0)[("10Gbit", 0.002, "full")] == (100, 1000)  # first miss ends the frontier
    assert capacity(runs, 60.0)[("10Gbit", 0.002, "full")] == (2000, 0)
    assert capacity(runs, 1.0)[("10Gbit", 0.002, "full")] == (0, 10)
    assert not math.isnan(runs[0].records[0].time_to_ready_s)
