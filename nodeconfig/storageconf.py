"""storage.conf plus storage.conf.d/*.conf, merged the way the proposal asks containers/storage to.

Rules (the proposal's risk is a drop-in silently wiping the node's own settings):
  * drop-ins are the `*.conf` files of the drop-in directory, applied in lexical order of their
    file names after the base file;
  * tables merge key by key, recursively: a later file overrides an earlier one only at the
    leaves it sets; every other key of the base file survives;
  * a leaf that is an array (e.g. `additionallayerstores`) is **replaced**, not appended: the
    drop-in states the whole list, so a toggle can also remove entries;
  * a later file may replace a table by a scalar (or the reverse) only by setting that key: the
    last writer wins at that key.

The node's pull mode follows from the merged result: lazy when `storage.options.
additionallayerstores` is non-empty, partial when `storage.options.pull_options.
enable_partial_images` is "true", else full.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from nodeconfig.errors import StorageConfError


class NodePullMode(StrEnum):
    """How a node gets images. Values equal `startup.modes.PullMode`'s (foundations do not import
    each other): `PullMode(mode.value)` converts."""

    FULL = "full"
    PARTIAL = "partial"
    LAZY = "lazy"


def merge_tables(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: `base` with `override` applied at the leaves (neither input is modified)."""
    out: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_storage_conf(base: Mapping[str, Any], dropins: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Apply already-parsed drop-ins, in the order given, over the base configuration."""
    merged = copy.deepcopy(dict(base))
    for d in dropins:
        merged = merge_tables(merged, d)
    return merged


def _parse(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise StorageConfError(f"cannot read {path}: {e.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise StorageConfError(f"{path}: not valid TOML ({e})") from None


def dropin_files(dropin_dir: str | Path) -> list[Path]:
    """The `*.conf` files of a drop-in directory in lexical order (missing directory -> none)."""
    d = Path(dropin_dir)
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if p.suffix == ".conf" and p.is_file()), key=lambda p: p.name)


def load_storage_conf(path: str | Path, dropin_dir: str | Path | None = None) -> dict[str, Any]:
    """The merged configuration of `path` and its drop-ins (default dir: `<path>.d`, i.e.
    `/etc/containers/storage.conf.d` for `/etc/containers/storage.conf`). A missing base file
    counts as empty, as containers/storage treats it."""
    base_path = Path(path)
    base = _parse(base_path) if base_path.exists() else {}
    ddir = Path(dropin_dir) if dropin_dir is not None else base_path.with_name(base_path.name + ".d")
    return merge_storage_conf(base, [_parse(p) for p in dropin_files(ddir)])


def _options(conf: Mapping[str, Any]) -> Mapping[str, Any]:
    storage = conf.get("storage", {})
    if not isinstance(storage, Mapping):
        raise StorageConfError("storage: expected a table")
    options = storage.get("options", {})
    if not isinstance(options, Mapping):
        raise StorageConfError("storage.options: expected a table")
    return options


def additional_layer_stores(conf: Mapping[str, Any]) -> list[str]:
    stores = _options(conf).get("additionallayerstores", [])
    if not isinstance(stores, list) or not all(isinstance(s, str) for s in stores):
        raise StorageConfError("storage.options.additionallayerstores: expected an array of strings")
    return list(stores)


def node_pull_mode(conf: Mapping[str, Any]) -> NodePullMode:
    """How a node with this merged storage configuration gets images."""
    if additional_layer_stores(conf):
        return NodePullMode.LAZY
    pull_options = _options(conf).get("pull_options", {})
    if not isinstance(pull_options, Mapping):
        raise StorageConfError("storage.options.pull_options: expected a table")
    partial = pull_options.get("enable_partial_images", "false")
    if partial is True or (isinstance(partial, str) and partial.lower() == "true"):
        return NodePullMode.PARTIAL
    return NodePullMode.FULL
