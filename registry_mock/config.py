"""Registry configuration: frozen specs with units in their names, unit parsing and the TOML profile loader.

A profile (TOML) has the tables [registry], [link], [auth], [faults] (+ [[faults.rule]]); unknown keys are
rejected by name. Rates are written like "100Mbit", "12.5MB/s", "1Gbit/s"; durations like "20ms", "1.5s".
"""

from __future__ import annotations

import enum
import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import RegistryConfigError

_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)(?:/s|ps)?\s*$")
_RATE_UNITS: dict[str, float] = {
    "": 1.0, "b": 1.0, "B": 1.0, "bytes": 1.0,
    "bit": 1 / 8, "kbit": 1e3 / 8, "Kbit": 1e3 / 8, "Mbit": 1e6 / 8, "Gbit": 1e9 / 8,
    "kb": 1e3 / 8, "Mb": 1e6 / 8, "Gb": 1e9 / 8,
    "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9,
    "KiB": 1024.0, "MiB": 1024.0**2, "GiB": 1024.0**3,
}
_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*(us|µs|ms|s|m|min)?\s*$")
_DURATION_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "m": 60.0, "min": 60.0}

# Efficiency of a central source vs concurrent transfers, shaped like the Dragonfly benchmark
# (~78% at 200 clients, ~59% at 1000, collapse beyond).
DRAGONFLY_CURVE: tuple[tuple[int, float], ...] = (
    (1, 1.0), (200, 0.78), (1000, 0.59), (1500, 0.25), (2000, 0.05),
)


def parse_rate(value: str | float | int) -> float:
    """Bytes per second from "100Mbit", "100Mbit/s", "12.5MB/s", "1GiB/s" or a plain number (bytes/s)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        rate = float(value)
    else:
        m = _RATE_RE.match(str(value))
        if not m or m.group(2) not in _RATE_UNITS:
            raise RegistryConfigError(
                f"bandwidth {value!r} is not a rate like '100Mbit', '12.5MB/s' or '1GiB/s'"
            )
        rate = float(m.group(1)) * _RATE_UNITS[m.group(2)]
    if not rate > 0:
        raise RegistryConfigError(f"bandwidth {value!r} must be > 0")
    return rate


def parse_duration(value: str | float | int) -> float:
    """Seconds from "20ms", "1.5s", "250us" or a plain number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        secs = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise RegistryConfigError(f"duration {value!r} is not like '20ms', '1.5s' or '250us'")
        secs = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if secs < 0:
        raise RegistryConfigError(f"duration {value!r} must be >= 0")
    return secs


def _positive_or_none(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise RegistryConfigError(f"{name} (={value}) must be > 0 or unset")


@dataclass(frozen=True, kw_only=True)
class LinkSpec:
    """The emulated link between the registry and its clients."""

    bandwidth_bytes_per_s: float | None = None  # per connection (transfer)
    egress_bandwidth_bytes_per_s: float | None = None  # registry-wide, shared fairly
    latency_s: float = 0.0  # added to every request before its response starts (RTT)
    rate_limit_per_s: float | None = None  # requests/s, beyond -> 429 + Retry-After
    rate_burst: int = 10
    max_concurrent_transfers: int | None = None  # body transfers beyond this wait their turn
    overload_curve: tuple[tuple[int, float], ...] | None = None  # (concurrent transfers, efficiency)

    def __post_init__(self) -> None:
        _positive_or_none("bandwidth_bytes_per_s", self.bandwidth_bytes_per_s)
        _positive_or_none("egress_bandwidth_bytes_per_s", self.egress_bandwidth_bytes_per_s)
        _positive_or_none("rate_limit_per_s", self.rate_limit_per_s)
        if self.latency_s < 0:
            raise RegistryConfigError(f"latency_s (={self.latency_s}) must be >= 0")
        if self.rate_burst < 1:
            raise RegistryConfigError(f"rate_burst (={self.rate_burst}) must be >= 1")
        if self.max_concurrent_transfers is not None and self.max_concurrent_transfers < 1:
            raise RegistryConfigError(
                f"max_concurrent_transfers (={self.max_concurrent_transfers}) must be >= 1 or unset"
            )
        if self.overload_curve is not None:
            curve = self.overload_curve
            if not curve:
                raise RegistryConfigError("overload_curve must have at least one (clients, efficiency) point")
            prev = 0
            for n, eff in curve:
                if n <= prev:
                    raise RegistryConfigError(
                        f"overload_curve client counts must increase (got {n} after {prev})")
                if not 0 < eff <= 1:
                    raise RegistryConfigError(f"overload_curve efficiency (={eff}) must be in (0, 1]")
                prev = n

    @property
    def shaped(self) -> bool:
        return self.bandwidth_bytes_per_s is not None or self.egress_bandwidth_bytes_per_s is not None

    def efficiency(self, active: int) -> float:
        """Fraction of the configured bandwidth delivered with `active` concurrent transfers."""
        curve = self.overload_curve
        if curve is None or active <= curve[0][0]:
            return 1.0 if curve is None else curve[0][1]
        for (n0, e0), (n1, e1) in itertools.pairwise(curve):
            if active <= n1:
                return e0 + (e1 - e0) * (active - n0) / (n1 - n0)
        return curve[-1][1]


class FaultKind(enum.Enum):
    ERROR_5XX = "5xx"  # answer `status` (default 503) instead of handling the request
    RESET = "reset"  # send `after_bytes` of the body, then reset the connection (RST)
    TRUNCATE = "truncate"  # send `after_bytes` of the body, then close cleanly (short body)
    CORRUPT = "corrupt"  # flip `corrupt_bytes` bytes of the body
    SLOW_FIRST_BYTE = "slow-first-byte"  # wait `delay_s` before the response starts
    RANGE_IGNORE = "range-ignore"  # ignore Range: 200 with the whole blob
    MULTIRANGE_400 = "multirange-400"  # refuse multi-range requests with 400
    RANGE_MERGE = "range-merge"  # sort and merge adjacent/overlapping ranges into fewer parts
    RANGE_416 = "range-416"  # 416 for any Range
    REDIRECT = "redirect"  # 307 blob GET/HEAD to an absolute /_blobs/<digest> URL on this server


@dataclass(frozen=True, kw_only=True)
class FaultRule:
    kind: FaultKind
    fraction: float = 1.0  # of matching requests, chosen deterministically from the seed
    repo: str | None = None  # fnmatch pattern on the repository name
    digest: str | None = None  # exact digest or a prefix of it
    status: int = 503
    after_bytes: int | None = None  # RESET/TRUNCATE: bytes sent first (default: half the body)
    delay_s: float = 1.0
    corrupt_bytes: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise RegistryConfigError(f"fault fraction (={self.fraction}) must be in [0, 1]")
        if not 500 <= self.status <= 599:
            raise RegistryConfigError(f"fault status (={self.status}) must be a 5xx status")
        if self.after_bytes is not None and self.after_bytes < 0:
            raise RegistryConfigError(f"fault after_bytes (={self.after_bytes}) must be >= 0")
        if self.delay_s < 0:
            raise RegistryConfigError(f"fault delay_s (={self.delay_s}) must be >= 0")
        if self.corrupt_bytes < 1:
            raise RegistryConfigError(f"fault corrupt_bytes (={self.corrupt_bytes}) must be >= 1")


@dataclass(frozen=True, kw_only=True)
class FaultSpec:
    seed: int = 0
    rules: tuple[FaultRule, ...] = ()


class AuthMode(enum.Enum):
    NONE = "none"
    TOKEN = "token"


@dataclass(frozen=True, kw_only=True)
class AuthSpec:
    mode: AuthMode = AuthMode.NONE
    users_file: str | None = None
    allow_anonymous_pull: bool = False
    token_ttl_s: float = 300.0
    service: str = "lazylab-registry"
    secret: bytes | None = None  # HMAC key for tokens; random per server when unset

    def __post_init__(self) -> None:
        if self.mode is AuthMode.TOKEN and self.users_file is None and not self.allow_anonymous_pull:
            raise RegistryConfigError("auth mode token needs users_file (--users) or allow_anonymous_pull")
        if not self.token_ttl_s > 0:
            raise RegistryConfigError(f"token_ttl_s (={self.token_ttl_s}) must be > 0")


@dataclass(frozen=True, kw_only=True)
class RegistrySpec:
    root: str | None = None  # storage directory; None keeps everything in memory
    link: LinkSpec = field(default_factory=LinkSpec)
    faults: FaultSpec = field(default_factory=FaultSpec)
    auth: AuthSpec = field(default_factory=AuthSpec)
    max_ranges: int = 1024
    delete_enabled: bool = True
    max_manifest_bytes: int = 4 * 1024 * 1024
    access_log: str | None = None  # JSON-lines file; records are also kept in memory
    header_limit_bytes: int = 65536 * 2

    def __post_init__(self) -> None:
        if self.max_ranges < 1:
            raise RegistryConfigError(f"max_ranges (={self.max_ranges}) must be >= 1")
        if self.max_manifest_bytes < 4 * 1024 * 1024:
            raise RegistryConfigError(f"max_manifest_bytes (={self.max_manifest_bytes}) must be >= 4 MiB")
        if self.header_limit_bytes < 65536:
            raise RegistryConfigError(f"header_limit_bytes (={self.header_limit_bytes}) must be >= 65536")


# ---------------------------------------------------------------- TOML profiles


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RegistryConfigError(
            f"unknown key(s) in {where}: {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _curve(value: Any) -> tuple[tuple[int, float], ...] | None:
    if value is None or value is False or value == "none":
        return None
    if value == "dragonfly" or value is True:
        return DRAGONFLY_CURVE
    try:
        return tuple((int(n), float(e)) for n, e in value)
    except (TypeError, ValueError) as e:
        raise RegistryConfigError(
            f"overload must be 'dragonfly', 'none' or [[clients, efficiency], ...]: {e}") from None


def link_from_table(t: Mapping[str, Any], base: LinkSpec | None = None) -> LinkSpec:
    _check_keys(t, {"bandwidth", "egress_bandwidth", "latency", "rate_limit_per_s", "rate_burst",
                    "max_concurrent_transfers", "overload"}, "[link]")
    kw: dict[str, Any] = {}
    if "bandwidth" in t:
        kw["bandwidth_bytes_per_s"] = parse_rate(t["bandwidth"])
    if "egress_bandwidth" in t:
        kw["egress_bandwidth_bytes_per_s"] = parse_rate(t["egress_bandwidth"])
    if "latency" in t:
        kw["latency_s"] = parse_duration(t["latency"])
    if "rate_limit_per_s" in t:
        kw["rate_limit_per_s"] = float(t["rate_limit_per_s"])
    for k in ("rate_burst", "max_concurrent_transfers"):
        if k in t:
            kw[k] = int(t[k])
    if "overload" in t:
        kw["overload_curve"] = _curve(t["overload"])
    return replace(base or LinkSpec(), **kw)


def fault_rule_from_table(t: Mapping[str, Any]) -> FaultRule:
    allowed = {f.name for f in fields(FaultRule)} | {"delay"}
    _check_keys(t, allowed, "[[faults.rule]]")
    if "kind" not in t:
        kinds = ", ".join(k.value for k in FaultKind)
        raise RegistryConfigError(f"[[faults.rule]] needs kind (one of {kinds})")
    try:
        kind = FaultKind(t["kind"])
    except ValueError:
        raise RegistryConfigError(
            f"unknown fault kind {t['kind']!r} (one of {', '.join(k.value for k in FaultKind)})"
        ) from None
    kw: dict[str, Any] = {"kind": kind}
    for k in ("fraction", "delay_s"):
        if k in t:
            kw[k] = float(t[k])
    if "delay" in t:
        kw["delay_s"] = parse_duration(t["delay"])
    for k in ("status", "after_bytes", "corrupt_bytes"):
        if k in t:
            kw[k] = int(t[k])
    for k in ("repo", "digest"):
        if k in t:
            kw[k] = str(t[k])
    return FaultRule(**kw)


def load_profile(path: str | Path, base: RegistrySpec | None = None) -> RegistrySpec:
    """Read a TOML profile into a RegistrySpec (on top of `base`); unknown keys raise RegistryConfigError."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise RegistryConfigError(f"cannot read profile {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise RegistryConfigError(f"profile {path} is not valid TOML: {e}") from None
    return spec_from_mapping(data, base)


def spec_from_mapping(data: Mapping[str, Any], base: RegistrySpec | None = None) -> RegistrySpec:
    spec = base or RegistrySpec()
    _check_keys(data, {"registry", "link", "auth", "faults"}, "profile")
    try:
        reg = dict(data.get("registry", {}))
        reg_keys = {"root", "max_ranges", "delete_enabled", "max_manifest_bytes", "access_log"}
        _check_keys(reg, reg_keys, "[registry]")
        spec = replace(spec, **reg)
        if "link" in data:
            spec = replace(spec, link=link_from_table(data["link"], spec.link))
        if "auth" in data:
            a = dict(data["auth"])
            _check_keys(a, {"mode", "users_file", "allow_anonymous_pull", "token_ttl", "service"}, "[auth]")
            kw: dict[str, Any] = {}
            if "mode" in a:
                kw["mode"] = AuthMode(a["mode"])
            for k in ("users_file", "service"):
                if k in a:
                    kw[k] = str(a[k])
            if "allow_anonymous_pull" in a:
                kw["allow_anonymous_pull"] = bool(a["allow_anonymous_pull"])
            if "token_ttl" in a:
                kw["token_ttl_s"] = parse_duration(a["token_ttl"])
            spec = replace(spec, auth=replace(spec.auth, **kw))
        if "faults" in data:
            f = dict(data["faults"])
            _check_keys(f, {"seed", "rule"}, "[faults]")
            rules = tuple(fault_rule_from_table(r) for r in f.get("rule", []))
            spec = replace(spec, faults=FaultSpec(seed=int(f.get("seed", spec.faults.seed)),
                                                  rules=spec.faults.rules + rules))
    except (TypeError, ValueError) as e:
        if isinstance(e, RegistryConfigError):
            raise
        raise RegistryConfigError(f"invalid profile value: {e}") from None
    return spec


def parse_fault_spec(text: str, seed: int = 0) -> FaultSpec:
    """Parse `--faults`: `;`-separated rules `kind[:fraction][,key=value...]`; `seed=N` sets the seed.

    Example: "seed=7;5xx:0.1,status=500;range-ignore,repo=ns/*;reset:0.5,after_bytes=1000".
    """
    rules = []
    for item in (s.strip() for s in text.split(";")):
        if not item:
            continue
        if item.startswith("seed="):
            try:
                seed = int(item[5:])
            except ValueError:
                raise RegistryConfigError(f"fault seed {item[5:]!r} is not an integer") from None
            continue
        head, *opts = item.split(",")
        kind, _, frac = head.partition(":")
        table: dict[str, Any] = {"kind": kind.strip()}
        if frac:
            table["fraction"] = frac
        for opt in opts:
            k, eq, v = opt.partition("=")
            if not eq:
                raise RegistryConfigError(f"fault option {opt!r} is not key=value")
            table[k.strip()] = v.strip()
        try:
            rules.append(fault_rule_from_table(table))
        except ValueError as e:
            if isinstance(e, RegistryConfigError):
                raise
            raise RegistryConfigError(f"invalid fault rule {item!r}: {e}") from None
    return FaultSpec(seed=seed, rules=tuple(rules))
