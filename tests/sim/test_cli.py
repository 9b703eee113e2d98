"""`lazylab simulate` and the example scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from lazylab.cli import main
from sim.run import run_scenario
from startup.scenario_io import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))


def test_there_is_one_example_per_scenario_kind() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {
        "one-pod",
        "rollout",
        "poisson-burst",
        "recorded-burst",
        "scale-out",
        "shared-layers",
        "mcp-toggle",
        "registry-limits",
    } <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_example_scenarios_run(path: Path) -> None:
    s = load_scenario(path)
    run = run_scenario(s)
    assert not run.result.error
    assert run.records and all(r.ok for r in run.records)


def test_simulate_writes_outputs_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    status = main(
        [
            "simulate",
            str(ROOT / "scenarios/one-pod.toml"),
            "--set",
            "workload.reads=50",
            "--seeds",
            "2",
            "--modes",
            "full,lazy",
            "-o",
            str(out),
            "--prometheus",
        ]
    )
    assert status == 0
    text = capsys.readouterr().out
    assert "p95" in text and "full" in text and "lazy" in text
    for mode in ("full", "lazy"):
        for seed in (1, 2):
            d = out / mode / f"seed-{seed}"
            for name in (
                "effective.toml",
                "result.json",
                "records.csv",
                "egress.csv",
                "node_cpu.csv",
                "metrics.prom",
            ):
                assert (d / name).is_file(), d / name
    prom = (out / "lazy" / "seed-1" / "metrics.prom").read_text()
    assert 'kubelet_pod_start_duration_seconds_bucket{le="+Inf"} 1' in prom
    assert "kubelet_pod_start_sli_duration_seconds_count 1" in prom
    assert 'kubelet_runtime_operations_duration_seconds_count{operation_type="pull_image"} 1' in prom


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "cluster.nodez=3"], "unknown key 'cluster.nodez'"),
        (["--set", "cluster.rtt_s=-1"], "cluster.rtt_s (=-1.0) must be >= 0"),
        (["--modes", "eager"], "mode (='eager') must be one of"),
        (["--params", "/nonexistent.toml"], "cannot read params file"),
        (["--seeds", "0"], "--seeds (=0) must be >= 1"),
    ],
)
def test_user_errors_are_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["simulate", str(ROOT / "scenarios/one-pod.toml"), *args])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_failed_run_still_writes_its_envelope(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[images]]\nkind = "oci"\nname = "x"\nlayout = "nowhere"\n')
    status = main(["simulate", str(bad), "-o", str(tmp_path / "out")])
    assert status == 2
    result = (tmp_path / "out" / "lazy" / "seed-0" / "result.json").read_text()
    assert '"error"' in result and "nowhere" in result
    assert "nowhere" in capsys.readouterr().err


def test_print_config_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["simulate", str(ROOT / "scenarios/one-pod.toml"), "--set", "cluster.nodes=3", "--print-config"])
        == 0
    )
    text = capsys.readouterr().out
    assert "nodes = 3" in text and "background_concurrency = 2" in text and "[pull.prefetch]" in text
