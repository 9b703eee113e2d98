"""Declaring experiments: factor expansion, effective configs and run keys."""

from __future__ import annotations

import pytest
import xp_engine

from experiments.config import expand_factors, get_dotted, parse_value, set_dotted, with_overrides
from experiments.errors import ConfigError
from experiments.framework import Calibration, Experiment, run_key


def make(**kw) -> Experiment:
    kw.setdefault("name", "xp")
    kw.setdefault("base", xp_engine.BASE)
    return Experiment(run=xp_engine.run, **kw)


def test_factors_expand_as_cross_product_last_fastest():
    points = expand_factors({"mode": ["full", "lazy"], "link.rtt_s": [0.001, 0.05, 0.1]})
    assert len(points) == 6
    assert points[0] == {"mode": "full", "link.rtt_s": 0.001}
    assert points[1] == {"mode": "full", "link.rtt_s": 0.05}
    assert points[3] == {"mode": "lazy", "link.rtt_s": 0.001}
    assert expand_factors({}) == [{}]


def test_plan_applies_dotted_factors_and_replications():
    exp = make(factors={"mode": ["full", "lazy"], "link.rtt_s": [0.001, 0.05]}, replications=3)
    tasks = exp.plan(Calibration.none(), "v1")
    assert len(tasks) == 12
    assert {t.seed for t in tasks} == {0, 1, 2}
    lazy_50 = [t for t in tasks if t.factors == {"mode": "lazy", "link.rtt_s": 0.05}]
    assert len(lazy_50) == 3
    assert lazy_50[0].config["link"] == {"rtt_s": 0.05, "bandwidth_bytes_per_s": 1e7}
    assert xp_engine.BASE["link"]["rtt_s"] == 0.001  # the base is never mutated
    assert len({t.key for t in tasks}) == 12


def test_same_config_same_key_and_any_change_a_new_key():
    cfg = with_overrides(xp_engine.BASE, {})
    k = run_key(cfg, 0, "cal", "v1")
    reordered = {"link": {"bandwidth_bytes_per_s": 1e7, "rtt_s": 0.001}, "pods": 2, "image_bytes": 1_000_000,
                 "mode": "full"}
    assert run_key(reordered, 0, "cal", "v1") == k
    assert run_key(with_overrides(cfg, {"link.rtt_s": 0.002}), 0, "cal", "v1") != k
    assert run_key(cfg, 1, "cal", "v1") != k
    assert run_key(cfg, 0, "cal2", "v1") != k
    assert run_key(cfg, 0, "cal", "v2") != k


def test_calibration_digest_only_keys_experiments_that_use_it():
    a, b = Calibration(digest="a"), Calibration(digest="b")
    uses = make()
    assert uses.plan(a, "v")[0].key != uses.plan(b, "v")[0].key
    indifferent = make(uses_calibration=False)
    assert indifferent.plan(a, "v")[0].key == indifferent.plan(b, "v")[0].key
    assert indifferent.plan(a, "v")[0].calibration.digest == "none"


def test_effective_hook_normalises_before_keying():
    def fill_defaults(cfg):
        out = dict(cfg)
        out.setdefault("pods", 2)
        return out

    explicit = make(base=xp_engine.BASE)
    implicit = make(base={k: v for k, v in xp_engine.BASE.items() if k != "pods"}, effective=fill_defaults)
    assert explicit.plan(Calibration.none(), "v")[0].key == implicit.plan(Calibration.none(), "v")[0].key


def test_quick_variant_replaces_levels_seeds_and_base():
    exp = make(factors={"mode": ["full", "lazy", "partial"]}, replications=5,
               quick_factors={"mode": ["lazy"]}, quick_replications=1, quick_overrides={"pods": 1})
    q = exp.quick_variant()
    tasks = q.plan(Calibration.none(), "v")
    assert [(t.factors["mode"], t.seed, t.config["pods"]) for t in tasks] == [("lazy", 0, 1)]
    assert len(exp.plan(Calibration.none(), "v")) == 15


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"replications": 0}, "replications"),
        ({"factors": {"mode": []}}, "non-empty"),
        ({"factors": {"mode": "full"}}, "non-empty"),
        ({"factors": {"a..b": [1]}}, "dotted"),
        ({"name": "a b"}, "experiment name"),
        ({"base": {"x": None}}, "base.x"),
        ({"factors": {"x": [float("nan")]}}, "finite"),
    ],
)
def test_bad_declarations_are_rejected_naming_the_constraint(kw, match):
    with pytest.raises(ConfigError, match=match):
        make(**kw)


def test_dotted_helpers():
    cfg: dict = {}
    set_dotted(cfg, "a.b.c", 1)
    assert get_dotted(cfg, "a.b.c") == 1
    with pytest.raises(ConfigError, match="not a table"):
        set_dotted(cfg, "a.b.c.d", 2)
    with pytest.raises(ConfigError, match="not set"):
        get_dotted(cfg, "a.x")
    assert parse_value("0.05") == 0.05
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("true") is True
    assert parse_value("lazy") == "lazy"
