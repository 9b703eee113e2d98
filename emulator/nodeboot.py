"""An emulated node's boot: the proposal's configuration as input, and `crio check-layer-state`.

A node is given a configuration root laid out like a machine (`etc/containers/storage.conf` and
`etc/containers/storage.conf.d/*.conf`, what `lazylab node render -o DIR` writes plus the node's
own base file) and a state file. `boot_node`:
  1. merges storage.conf with its drop-ins (`nodeconfig.load_storage_conf`) and derives the pull
     mode starts use when they do not force one (`node.pull_mode`: lazy with an Additional
     Layer Store, partial with `enable_partial_images`, else full) and the state marker;
  2. runs `nodeconfig.check_layer_state` with the state file and the node's images: every image
     it mounted lazily (its layers live in the store) and every local root (full/partial pulls);
  3. removes the images the decision names: the lazy store is dropped (background fetch
     stopped) and its cached units discarded, so a later start fetches TOCs and data again;
  4. writes the new marker to the state file atomically and records a `BootRecord`.
The simulator's pool toggle runs the same `check_layer_state` (`sim.node.SimNode.wipe_lazy`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from emulator.errors import EmulatorError
from emulator.node import EmulatedNode
from emulator.store import LazyStore
from nodeconfig.layerstate import ImageRecord, LayerStateDecision, check_layer_state
from nodeconfig.markers import marker_for_storage_conf
from nodeconfig.render import STATE_FILE_PATH
from nodeconfig.storageconf import load_storage_conf, node_pull_mode
from startup.modes import PullMode

STORAGE_CONF = "etc/containers/storage.conf"  # relative to a configuration root


@dataclass(frozen=True, kw_only=True)
class BootRecord:
    node: str
    pull_mode: PullMode  # what starts use unless they force a mode
    marker: str  # the marker the configuration implies (now in the state file)
    previous_marker: str | None  # the state file's content before boot (None: absent)
    decision: LayerStateDecision

    @property
    def removed(self) -> tuple[str, ...]:
        """References of the images check-layer-state removed."""
        return tuple(i.reference for i in self.decision.remove)


def default_state_file(config_root: str | Path) -> Path:
    return Path(config_root) / STATE_FILE_PATH.lstrip("/")


def read_state_file(path: str | Path) -> str | None:
    """The state file's marker; None when it does not exist (undecodable bytes stay a mismatch)."""
    try:
        return Path(path).read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None


def write_state_file(path: str | Path, marker: str) -> None:
    """Replace the state file atomically (a crash leaves the old marker or the new one)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(marker)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def node_images(node: EmulatedNode) -> list[ImageRecord]:
    """What is on the node: lazily mounted images (layers in the store) and local roots."""
    images = [
        ImageRecord(reference=key, als_layers=len(store.layers), size_bytes=0)
        for key, store in node.stores.items()
    ]
    for root in node.local_roots:
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        images.append(ImageRecord(reference=f"local:{root.name}", als_layers=0, size_bytes=size))
    return images


def _discard_cached_units(node: EmulatedNode, store: LazyStore) -> None:
    """Drop every cache entry the store could have written (unit keys and block keys)."""
    bs = store.options.block_size_bytes
    for i, (toc, layer) in enumerate(zip(store.tocs, store.layers, strict=True)):
        for entry in toc.regular_files():
            with contextlib.suppress(EmulatorError):  # an unverifiable entry was never cached
                for unit in store.units_for(i, entry):
                    node.cache.discard(unit.key)
        for b in range(-(-layer.size // bs)):
            node.cache.discard(f"{layer.digest}:blk{bs}:{b}")


async def remove_lazy_image(node: EmulatedNode, key: str) -> None:
    """Remove a lazily pulled image: its store, background fetch and cached data."""
    store = node.stores.pop(key, None)
    node.store_locks.pop(key, None)
    if store is None:
        return
    bg = getattr(store, "_background", None)
    if bg is not None:
        await bg.stop()
        if bg in node.background:
            node.background.remove(bg)
    await store.close()
    _discard_cached_units(node, store)


async def boot_node(
    node: EmulatedNode, config_root: str | Path, *, state_file: str | Path | None = None
) -> BootRecord:
    """Boot `node` with the configuration under `config_root` (see the module docstring)."""
    root = Path(config_root)
    conf = load_storage_conf(root / STORAGE_CONF)
    mode = PullMode(node_pull_mode(conf).value)
    marker = marker_for_storage_conf(conf)
    path = Path(state_file) if state_file is not None else default_state_file(root)
    previous = read_state_file(path)
    decision = check_layer_state(previous, marker, node_images(node))
    for image in decision.remove:
        await remove_lazy_image(node, image.reference)
    write_state_file(path, decision.new_state)
    node.pull_mode = mode
    record = BootRecord(
        node=node.name, pull_mode=mode, marker=marker, previous_marker=previous, decision=decision
    )
    node.boot_log.append(record)
    return record


__all__ = [
    "BootRecord",
    "boot_node",
    "default_state_file",
    "node_images",
    "read_state_file",
    "remove_lazy_image",
    "write_state_file",
]
