"""The scenario loader: unknown keys, --set, coercion, validation messages, round trip."""

from __future__ import annotations

import pytest

from startup.modes import PullMode
from startup.scenario import (
    LinearOverload,
    PoissonArrivals,
    Scenario,
    ScenarioError,
    SyntheticImageSpec,
    SyntheticLayerSpec,
    SyntheticWorkload,
)
from startup.scenario_io import dumps_effective_config, load_scenario, loads_scenario
from startup.synthimage import plan_layer
from startup.tracegen import synthetic_trace

BASE = """
name = "t"
seed = 3
mode = "lazy"
[cluster]
nodes = 10
rtt_s = 0.02
[registry.overload]
kind = "linear"
knee_transfers = 50
[[images]]
kind = "synthetic"
name = "app"
[[images.layers]]
name = "base"
files = 100
total_bytes = 1e7
[workload]
kind = "synthetic"
reads = 100
[arrivals]
kind = "poisson"
pods = 20
"""


def test_loads_with_defaults_and_variants() -> None:
    s = loads_scenario(BASE)
    assert s.mode is PullMode.LAZY and s.cluster.nodes == 10 and s.cluster.rtt_s == 0.02
    assert isinstance(s.registry.overload, LinearOverload) and s.registry.overload.knee_transfers == 50
    assert isinstance(s.arrivals, PoissonArrivals) and s.arrivals.pods == 20
    img = s.images[0]
    assert isinstance(img, SyntheticImageSpec) and img.layers[0].total_bytes == 10_000_000
    assert isinstance(img.layers[0].total_bytes, int)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus = 1\n" + BASE, "'bogus'"),
        (BASE + "\nbogus = 1\n", "'arrivals.bogus'"),
        (BASE.replace("rtt_s = 0.02", "rtt_s = 0.02\nnodez = 3"), "'cluster.nodez'"),
        (BASE.replace("knee_transfers = 50", "knee = 50"), "'registry.overload.knee'"),
        (BASE.replace("files = 100", "files = 100\ncolour = 'red'"), "'images.0.layers.0.colour'"),
    ],
)
def test_unknown_keys_are_named(text: str, key: str) -> None:
    with pytest.raises(ScenarioError, match=f"unknown key {key}"):
        loads_scenario(text)


def test_set_overrides_go_through_the_same_loader() -> None:
    s = loads_scenario(
        BASE, overrides=["cluster.nodes=5", "images.0.layers.0.files=7", "mode=full", "arrivals.pods=3"]
    )
    assert s.cluster.nodes == 5 and s.images[0].layers[0].files == 7  # type: ignore[union-attr]
    assert s.mode is PullMode.FULL and s.arrivals.pods == 3  # type: ignore[union-attr]
    with pytest.raises(ScenarioError, match=r"unknown key 'cluster.nodez'"):
        loads_scenario(BASE, overrides=["cluster.nodez=1"])
    with pytest.raises(ScenarioError, match="expected KEY=VALUE"):
        loads_scenario(BASE, overrides=["cluster.nodes"])
    with pytest.raises(ScenarioError, match="not an index"):
        loads_scenario(BASE, overrides=["images.4.name=x"])
    # switching kind keeps the old kind's keys, which the new kind rejects by name
    with pytest.raises(ScenarioError, match=r"unknown key 'arrivals.pods'"):
        loads_scenario(BASE, overrides=["arrivals.kind=rollout"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cluster.rtt_s=-1", r"cluster.rtt_s \(=-1.0\) must be >= 0"),
        ("cluster.nodes=1.5", r"cluster.nodes \(=1.5\) must be an integer"),
        ("cluster.nodes=0", r"cluster.nodes \(=0\) must be >= 1"),
        ("cluster.serialize_image_pulls=maybe", r"must be true or false"),
        ("mode=eager", r"mode \(='eager'\) must be one of full, partial, lazy, lazy-prefetch"),
        ("workload.kind=foo", r"workload.kind \(='foo'\) must be one of trace, synthetic, empty"),
        ("workload.working_set_fraction=0", r"working_set_fraction \(=0.0\) must be in \(0, 1\]"),
        ("pull.lazy_granularity=page", r"pull.lazy_granularity \(='page'\) must be 'block' or 'chunk'"),
        ("images.0.layers.0.derived_from=nope", r"derived_from \(='nope'\) names no layer"),
    ],
)
def test_validation_messages_name_the_constraint(override: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        loads_scenario(BASE, overrides=[override])


def test_coercion_of_strings_from_set() -> None:
    s = loads_scenario(
        BASE, overrides=["cluster.rtt_s='0.5'", "cluster.serialize_image_pulls='false'", "cluster.cores=8.0"]
    )
    assert s.cluster.rtt_s == 0.5 and s.cluster.serialize_image_pulls is False and s.cluster.cores == 8


def test_host_cores_is_loaded_checked_and_in_the_effective_config() -> None:
    assert loads_scenario(BASE).cluster.host_cores == 0  # each node its own cores
    s = loads_scenario(BASE, overrides=["cluster.host_cores=2"])
    assert s.cluster.host_cores == 2
    text = dumps_effective_config(s)
    assert "host_cores = 2" in text and loads_scenario(text) == s
    with pytest.raises(ScenarioError, match=r"cluster\.host_cores \(=-1\) must be >= 0"):
        loads_scenario(BASE, overrides=["cluster.host_cores=-1"])


def test_effective_config_round_trips_with_defaults(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = loads_scenario(BASE)
    text = dumps_effective_config(s)
    assert "background_concurrency = 2" in text and "block_bytes = 50000" in text
    assert loads_scenario(text) == s
    p = tmp_path / "s.toml"
    p.write_text(BASE)
    assert load_scenario(p).base_dir == str(tmp_path)


def test_missing_file_and_bad_toml() -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario("/nonexistent/x.toml")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        loads_scenario("a = = 1")
    with pytest.raises(ScenarioError, match="images must list at least one image"):
        loads_scenario("seed = 1")
    with pytest.raises(ScenarioError, match=r"missing key images\.0\.'name'"):
        loads_scenario("[[images]]\nkind='synthetic'\n")


def test_shared_layers_must_agree() -> None:
    a = SyntheticLayerSpec(name="base", files=10, total_bytes=1000)
    b = SyntheticLayerSpec(name="base", files=11, total_bytes=1000)
    with pytest.raises(ScenarioError, match="declared twice"):
        Scenario(
            images=(SyntheticImageSpec(name="x", layers=(a,)), SyntheticImageSpec(name="y", layers=(b,)))
        )


def test_synthetic_plan_and_trace_are_deterministic() -> None:
    base = SyntheticLayerSpec(name="base", files=50, total_bytes=1_000_000)
    v2 = SyntheticLayerSpec(
        name="v2", files=50, total_bytes=1_000_000, derived_from="base", changed_fraction=0.5
    )
    plan = plan_layer(base, 1)
    assert plan == plan_layer(base, 1) and plan != plan_layer(base, 2)
    assert sum(f.size_bytes for f in plan) == 1_000_000
    derived = plan_layer(v2, 1, {"base": base, "v2": v2})
    same = sum(a.content_key == b.content_key for a, b in zip(plan, derived, strict=True))
    assert 10 < same < 40
    files = [(f.path, f.size_bytes) for f in plan]
    spec = SyntheticWorkload(reads=100, working_set_fraction=0.2)
    t = synthetic_trace(files, spec, 7)
    assert t == synthetic_trace(files, spec, 7) and t != synthetic_trace(files, spec, 8)
    sizes = dict(files)
    assert all(op.offset + op.length <= sizes[op.path] for op in t)
    assert len(t) == 100
