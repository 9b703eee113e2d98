"""The proposal's `ContainerRuntimeConfig` (machineconfiguration.openshift.io/v1), lazy-pull subset.

Accepted shape (YAML or JSON; unknown keys elsewhere in the object are ignored, as the API
server would keep them for other features):

    apiVersion: machineconfiguration.openshift.io/v1
    kind: ContainerRuntimeConfig
    metadata: {name: lazy-pull}
    spec:
      machineConfigPoolSelector:
        matchLabels: {pools.operator.machineconfiguration.openshift.io/worker: ""}
      containerRuntimeConfig:
        lazyImagePull: {mode: Enabled}     # Enabled | Disabled

Every error names the offending field path, e.g.
`spec.containerRuntimeConfig.lazyImagePull.mode: unknown value 'On' (expected Enabled or Disabled)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from nodeconfig.errors import CrcError

API_VERSION = "machineconfiguration.openshift.io/v1"
KIND = "ContainerRuntimeConfig"
POOL_LABEL_PREFIX = "pools.operator.machineconfiguration.openshift.io/"


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so `mode: On` stays the string 'On'."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class LazyPullMode(StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


@dataclass(frozen=True, kw_only=True)
class ContainerRuntimeConfig:
    name: str
    pool_selector: Mapping[str, str] = field(default_factory=dict)
    lazy_mode: LazyPullMode = LazyPullMode.DISABLED

    def __post_init__(self) -> None:
        if not self.pool_selector:
            raise CrcError("spec.machineConfigPoolSelector.matchLabels: must select at least one label")

    @property
    def enabled(self) -> bool:
        return self.lazy_mode is LazyPullMode.ENABLED

    @property
    def pools(self) -> tuple[str, ...]:
        """Pool names named by the standard `pools.operator.../<pool>` selector labels."""
        return tuple(
            sorted(k[len(POOL_LABEL_PREFIX) :] for k in self.pool_selector if k.startswith(POOL_LABEL_PREFIX))
        )

    def selects(self, pool: str) -> bool:
        """True when the selector names `pool`; a selector of custom labels only (no standard
        pool label) cannot be checked here, so any pool the caller names is accepted."""
        return pool in self.pools or not self.pools


def _mapping(obj: Any, path: str) -> Mapping[str, Any]:
    if obj is None:
        raise CrcError(f"{path}: missing")
    if not isinstance(obj, Mapping):
        raise CrcError(f"{path}: expected a mapping, got {type(obj).__name__}")
    return obj


def _field(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj or obj[key] is None:
        raise CrcError(f"{path}.{key}: missing" if path else f"{key}: missing")
    return obj[key]


def parse_crc_object(obj: Any) -> ContainerRuntimeConfig:
    """Validate a decoded ContainerRuntimeConfig object."""
    root = _mapping(obj, "(document)")
    api = _field(root, "apiVersion", "")
    if api != API_VERSION:
        raise CrcError(f"apiVersion: unsupported value {api!r} (expected {API_VERSION})")
    kind = _field(root, "kind", "")
    if kind != KIND:
        raise CrcError(f"kind: unsupported value {kind!r} (expected {KIND})")
    meta = root.get("metadata") or {}
    meta = _mapping(meta, "metadata")
    name = meta.get("name", "")
    if not isinstance(name, str):
        raise CrcError(f"metadata.name: expected a string, got {type(name).__name__}")
    spec = _mapping(root.get("spec"), "spec")
    selector = _mapping(spec.get("machineConfigPoolSelector"), "spec.machineConfigPoolSelector")
    labels = _mapping(selector.get("matchLabels"), "spec.machineConfigPoolSelector.matchLabels")
    clean: dict[str, str] = {}
    for k, v in labels.items():
        if not isinstance(k, str) or not k:
            raise CrcError(f"spec.machineConfigPoolSelector.matchLabels: label key {k!r} must be a string")
        if v is None:
            v = ""
        if not isinstance(v, str):
            raise CrcError(
                f"spec.machineConfigPoolSelector.matchLabels.{k}: expected a string, got {type(v).__name__}"
            )
        clean[k] = v
    if not clean:
        raise CrcError("spec.machineConfigPoolSelector.matchLabels: must select at least one label")
    crc_spec = _mapping(spec.get("containerRuntimeConfig"), "spec.containerRuntimeConfig")
    lazy = _mapping(crc_spec.get("lazyImagePull"), "spec.containerRuntimeConfig.lazyImagePull")
    mode_path = "spec.containerRuntimeConfig.lazyImagePull.mode"
    if "mode" not in lazy or lazy["mode"] is None:
        raise CrcError(f"{mode_path}: missing (expected Enabled or Disabled)")
    raw_mode = lazy["mode"]
    try:
        mode = LazyPullMode(raw_mode)
    except ValueError:
        raise CrcError(f"{mode_path}: unknown value {raw_mode!r} (expected Enabled or Disabled)") from None
    unknown = set(lazy) - {"mode"}
    if unknown:
        names = sorted(map(str, unknown))
        raise CrcError(f"spec.containerRuntimeConfig.lazyImagePull: unknown fields {names}")
    return ContainerRuntimeConfig(name=name, pool_selector=clean, lazy_mode=mode)


def parse_crc(text: str, *, source: str = "<crc>") -> ContainerRuntimeConfig:
    """Parse YAML (or JSON) text holding one ContainerRuntimeConfig."""
    try:
        obj = yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise CrcError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    return parse_crc_object(obj)


def load_crc(path: str | Path) -> ContainerRuntimeConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise CrcError(f"cannot read {p}: {e.strerror}") from None
    return parse_crc(text, source=str(p))
