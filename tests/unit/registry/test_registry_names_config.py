"""Name/tag/digest validators, upload Content-Range parsing, unit parsing and TOML profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_mock.config import (
    DRAGONFLY_CURVE,
    AuthMode,
    FaultKind,
    LinkSpec,
    load_profile,
    parse_duration,
    parse_fault_spec,
    parse_rate,
)
from registry_mock.errors import RegistryConfigError, RegistryError
from registry_mock.names import is_valid_name, is_valid_tag, parse_upload_content_range


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a", True),
        ("ns/app", True),
        ("a__b", True),
        ("a___b", False),
        ("a--b", True),
        ("a.b", True),
        ("A", False),
        ("a/../b", False),
        ("..", False),
        ("a//b", False),
        ("/a", False),
        ("a/", False),
        ("a%2fb", False),
        ("x" * 255, True),
        ("x" * 256, False),
        ("", False),
    ],
)
def test_names(name: str, ok: bool) -> None:
    assert is_valid_name(name) is ok


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("v1", True),
        ("_x", True),
        (".x", False),
        ("-x", False),
        ("a" * 128, True),
        ("a" * 129, False),
        ("..", False),
    ],
)
def test_tags(tag: str, ok: bool) -> None:
    assert is_valid_tag(tag) is ok


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("0-9", (0, 9)),
        ("bytes 0-9/10", (0, 9)),
        ("bytes=0-9", (0, 9)),
        ("bytes 5-9/*", (5, 9)),
    ],
)
def test_upload_content_range(value: str, want: tuple[int, int]) -> None:
    assert parse_upload_content_range(value) == want


@pytest.mark.parametrize("value", ["garbage", "9-3", "-1-5", "0-", "bytes */10"])
def test_upload_content_range_rejects(value: str) -> None:
    with pytest.raises(RegistryError) as e:
        parse_upload_content_range(value)
    assert e.value.status == 416


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("100Mbit", 12.5e6),
        ("100Mbit/s", 12.5e6),
        ("1Gbit", 125e6),
        ("12.5MB/s", 12.5e6),
        ("1MiB/s", 1048576),
        ("500kbit", 62500),
        ("1000", 1000),
        (2000, 2000),
    ],
)
def test_parse_rate(text: str | int, bps: float) -> None:
    assert parse_rate(text) == pytest.approx(bps)


@pytest.mark.parametrize("text", ["fast", "10 parsecs", "-5Mbit", "0"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(RegistryConfigError):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "s"), [("20ms", 0.02), ("1.5s", 1.5), ("250us", 0.00025), ("0", 0.0), (3, 3.0)]
)
def test_parse_duration(text: str | int, s: float) -> None:
    assert parse_duration(text) == pytest.approx(s)


def test_link_validation_names_the_constraint() -> None:
    with pytest.raises(RegistryConfigError, match="latency_s"):
        LinkSpec(latency_s=-1)
    with pytest.raises(RegistryConfigError, match="bandwidth_bytes_per_s"):
        LinkSpec(bandwidth_bytes_per_s=0)
    with pytest.raises(RegistryConfigError, match="efficiency"):
        LinkSpec(overload_curve=((1, 1.0), (10, 1.5)))


def test_dragonfly_efficiency_curve() -> None:
    link = LinkSpec(overload_curve=DRAGONFLY_CURVE)
    assert link.efficiency(1) == 1.0
    assert link.efficiency(200) == pytest.approx(0.78)
    assert link.efficiency(1000) == pytest.approx(0.59)
    assert link.efficiency(5000) < 0.1
    effs = [link.efficiency(n) for n in range(1, 3000, 50)]
    assert effs == sorted(effs, reverse=True)
    assert LinkSpec().efficiency(10_000) == 1.0


def test_profile_roundtrip(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text("""
[registry]
max_ranges = 2048
[link]
bandwidth = "100Mbit"
egress_bandwidth = "1Gbit"
latency = "20ms"
overload = "dragonfly"
rate_limit_per_s = 50
[auth]
mode = "token"
allow_anonymous_pull = true
[faults]
seed = 7
[[faults.rule]]
kind = "range-ignore"
repo = "ns/*"
[[faults.rule]]
kind = "5xx"
fraction = 0.25
status = 502
""")
    spec = load_profile(p)
    assert spec.max_ranges == 2048
    assert spec.link.bandwidth_bytes_per_s == pytest.approx(12.5e6)
    assert spec.link.egress_bandwidth_bytes_per_s == pytest.approx(125e6)
    assert spec.link.latency_s == pytest.approx(0.02)
    assert spec.link.overload_curve == DRAGONFLY_CURVE
    assert spec.auth.mode is AuthMode.TOKEN
    assert spec.faults.seed == 7
    assert [r.kind for r in spec.faults.rules] == [FaultKind.RANGE_IGNORE, FaultKind.ERROR_5XX]
    assert spec.faults.rules[1].status == 502


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[link]\nbandwith = '1Mbit'\n", "bandwith"),
        ("[linky]\n", "linky"),
        ("[[faults.rule]]\nkind = 'explode'\n", "explode"),
        ("[[faults.rule]]\nkind = 'reset'\nafter = 3\n", "after"),
        ("[link]\nbandwidth = 'lots'\n", "lots"),
        ("not toml [", "TOML"),
    ],
)
def test_profile_rejects_unknown_keys_by_name(tmp_path: Path, body: str, needle: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(body)
    with pytest.raises(RegistryConfigError, match=needle):
        load_profile(p)


def test_fault_spec_string() -> None:
    spec = parse_fault_spec(
        "seed=3;5xx:0.5,status=500;reset,after_bytes=10,repo=ns/*;slow-first-byte,delay=5ms"
    )
    assert spec.seed == 3
    assert [r.kind for r in spec.rules] == [FaultKind.ERROR_5XX, FaultKind.RESET, FaultKind.SLOW_FIRST_BYTE]
    assert spec.rules[0].fraction == 0.5 and spec.rules[1].after_bytes == 10 and spec.rules[1].repo == "ns/*"
    assert spec.rules[2].delay_s == pytest.approx(0.005)
    with pytest.raises(RegistryConfigError, match="nope"):
        parse_fault_spec("nope")
    with pytest.raises(RegistryConfigError, match="fraction"):
        parse_fault_spec("5xx:2")
