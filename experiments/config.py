"""Configs as nested dicts addressed by dotted keys: overrides, factor expansion, canonical JSON.

An experiment's base config is a nested mapping of TOML-representable values (str, int, float,
bool, lists and tables of those). A factor names a dotted key (`registry.rtt_s`) and a list of
values; factors expand as a cross product, in declaration order, the last factor varying fastest.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.errors import ConfigError

Config = dict[str, Any]


def check_key(key: str) -> tuple[str, ...]:
    """Split a dotted key into its parts; every part must be non-empty."""
    parts = tuple(key.split("."))
    if not key or any(not p for p in parts):
        raise ConfigError(f"config key (={key!r}) must be dotted names like 'registry.rtt_s'")
    return parts


def get_dotted(config: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key; KeyError (ConfigError) naming the key if it is absent."""
    node: Any = config
    for part in check_key(key):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"config key {key!r} is not set")
        node = node[part]
    return node


def set_dotted(config: Config, key: str, value: Any) -> None:
    """Set a dotted key in place, creating intermediate tables; a non-table in the way is an error."""
    parts = check_key(key)
    node: Any = config
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is a {type(child).__name__}, not a table")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def with_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> Config:
    """A deep copy of `base` with each dotted key of `overrides` set."""
    out: Config = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        set_dotted(out, key, value)
    return out


def expand_factors(factors: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cross product of the factor levels, as one {dotted key: value} dict per point.

    No factors gives one empty point (the base config alone). Declaration order is kept and the
    last factor varies fastest, so plans are stable and readable.
    """
    keys = list(factors)
    levels = [list(factors[k]) for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*levels)]


def check_value(value: Any, where: str = "config") -> None:
    """Reject values TOML cannot hold (None, NaN/inf, non-string keys, objects)."""
    if isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} (={value}) must be a finite number")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_value(v, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where} has a non-string key {k!r}")
            check_value(v, f"{where}.{k}" if where else k)
        return
    raise ConfigError(f"{where} (={value!r}) must be a str, int, float, bool, list or table")


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, tuples as lists, no NaN."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def parse_value(text: str) -> Any:
    """A `--set key=value` right-hand side: TOML scalar/array syntax, else the bare string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
