"""The one scenario loader: TOML -> `Scenario`, `--set a.b=v` overrides, effective config -> TOML.

Rules (design.md "Describing a scenario"):
- every key must be a field of the dataclass it lands in; an unknown key raises
  `ScenarioError` naming the dotted key (`cluster.nodez`);
- values are coerced to the field's type (int <- integral float or numeric string, float <- int
  or string, bool <- "true"/"false", tuples <- arrays, enums <- their value);
- tagged unions take their variant from a `kind` key, looked up in the variant's one table;
- `--set` overrides are applied to the raw TOML dict, then the same loader runs, so an override
  is checked exactly like the file (a value is parsed as a TOML literal, else taken as a string);
- `effective_config(s)` is the full dict, defaults included, that loads back to an equal scenario.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomli_w

from startup import scenario as sc
from startup.scenario import Scenario, ScenarioError

# Union type -> its kind table (the only place variant names are mapped to classes).
_UNION_TABLES: dict[frozenset[type], Mapping[str, type]] = {
    frozenset(t.values()): t
    for t in (sc.IMAGE_KINDS, sc.WORKLOAD_KINDS, sc.ARRIVAL_KINDS, sc.OVERLOAD_KINDS, sc.PREFETCH_KINDS)
}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(sc))


def _toml_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("toml", True)]


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """`value` converted to type `tp`, or ScenarioError naming `key`."""
    args = _union_args(tp)
    if args is not None:
        non_none = tuple(a for a in args if a is not type(None))
        if len(non_none) < len(args) and len(non_none) == 1:  # Optional[X]
            return _coerce(value, non_none[0], key)
        table = _UNION_TABLES.get(frozenset(non_none))
        if table is None:
            raise TypeError(f"no kind table for {tp}")  # a programming error, not user input
        if not isinstance(value, Mapping):
            raise ScenarioError(f"{key} must be a table with a 'kind' key")
        kind = value.get("kind")
        if not isinstance(kind, str) or kind not in table:
            raise ScenarioError(f"{key}.kind (={kind!r}) must be one of {', '.join(table)}")
        rest = {k: v for k, v in value.items() if k != "kind"}
        return _build(table[kind], rest, key)
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, *_rest) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ScenarioError(f"{key} must be an array (got {value!r})")
        return tuple(_coerce(v, item_tp, f"{key}.{i}") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ScenarioError(f"{key} must be a table (got {value!r})")
        return _build(tp, value, key)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            raise ScenarioError(f"{key} (={value!r}) must be one of {choices}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ScenarioError(f"{key} (={value!r}) must be true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ScenarioError(f"{key} (={value!r}) must be an integer")
        if isinstance(value, int):
            return value
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ScenarioError(f"{key} (={value!r}) must be an integer") from None
        if not f.is_integer():
            raise ScenarioError(f"{key} (={value!r}) must be an integer")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ScenarioError(f"{key} (={value!r}) must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ScenarioError(f"{key} (={value!r}) must be a number") from None
    if tp is str:
        if isinstance(value, Mapping | list):
            raise ScenarioError(f"{key} (={value!r}) must be a string")
        return str(value)
    raise TypeError(f"unsupported field type {tp!r} at {key}")  # programming error


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in _toml_fields(cls)}
    for k in raw:
        if k not in fields:
            dotted = f"{prefix}.{k}" if prefix else k
            raise ScenarioError(f"unknown key {dotted!r}")
    hints = _hints(cls)
    kwargs = {}
    for name, value in raw.items():
        dotted = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], dotted)
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        missing = [
            f.name
            for f in fields.values()
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in kwargs
        ]
        if missing:
            where = f"{prefix}." if prefix else ""
            raise ScenarioError(f"missing key {where}{missing[0]!r}") from None
        raise ScenarioError(f"{prefix or 'scenario'}: {e}") from None


# -- overrides -----------------------------------------------------------------------------------
def _parse_literal(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply `a.b.c=value` to the raw TOML dict in place (array items by index: `images.0.name`)."""
    if "=" not in assignment:
        raise ScenarioError(f"--set {assignment!r}: expected KEY=VALUE")
    key, text = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ScenarioError(f"--set {assignment!r}: empty key component")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(f"--set {key}: {where} is not an index of the array (0..{len(node) - 1})")
            node = node[int(part)]
        else:
            if not isinstance(node, dict):
                raise ScenarioError(f"--set {key}: {where} is not a table")
            node = node.setdefault(part, {})
    last = parts[-1]
    value = _parse_literal(text.strip())
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ScenarioError(f"--set {key}: {last} is not an index of the array")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError(f"--set {key}: {'.'.join(parts[:-1])} is not a table")


# -- public API ----------------------------------------------------------------------------------
def scenario_from_dict(
    raw: Mapping[str, Any], *, overrides: Iterable[str] = (), base_dir: str = ""
) -> Scenario:
    data = _deep_copy(raw)
    for o in overrides:
        apply_override(data, o)
    s: Scenario = _build(Scenario, data, "")
    return dataclasses.replace(s, base_dir=base_dir) if base_dir else s


def loads_scenario(
    text: str, *, overrides: Iterable[str] = (), base_dir: str = "", source: str = "<scenario>"
) -> Scenario:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{source}: not valid TOML ({e})") from None
    return scenario_from_dict(raw, overrides=overrides, base_dir=base_dir)


def load_scenario(path: str | Path, *, overrides: Iterable[str] = ()) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ScenarioError(f"cannot read scenario {p}: {e.strerror}") from None
    return loads_scenario(text, overrides=overrides, base_dir=str(p.parent), source=str(p))


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        kind = getattr(type(value), "KIND", None)
        if kind is not None:
            out["kind"] = kind
        for f in _toml_fields(type(value)):
            v = getattr(value, f.name)
            if v is None:
                continue  # optional table absent
            out[f.name] = _to_plain(v)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_to_plain(v) for v in value]
    return value


def effective_config(scenario: Scenario) -> dict[str, Any]:
    """The scenario as a plain dict, every default spelled out; loads back to an equal scenario."""
    result: dict[str, Any] = _to_plain(scenario)
    return result


def dumps_effective_config(scenario: Scenario) -> str:
    return tomli_w.dumps(effective_config(scenario))


def write_effective_config(scenario: Scenario, path: str | Path) -> None:
    Path(path).write_text(dumps_effective_config(scenario))


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
