"""The check-layer-state marker a node's configuration implies, for both engines.

`marker_for_storage_conf`: what an emulated node derives from its merged storage.conf (the same
marker `render.render_node` writes: `version=1;store-format=1;ALS="<stores>"`, empty when no
Additional Layer Store is configured). `pool_toggle_markers`: the before/after markers of the
simulator's machine-config-pool toggle, which names pull modes rather than files. A toggle is a
configuration change by definition (the pool rolls only when its MachineConfig changes), so a
toggle between two lazy modes is modelled as a change of the store (its format generation):
the markers differ and check-layer-state removes the lazily pulled images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodeconfig.render import ALS_ENTRY, MARKER_VERSION, STORE_FORMAT, state_marker
from nodeconfig.storageconf import additional_layer_stores

LAZY_MODES = frozenset({"lazy", "lazy-prefetch"})  # pull modes whose layers live in the store


def marker_for_storage_conf(conf: Mapping[str, Any]) -> str:
    """The marker a merged storage configuration implies (empty: lazy pulling off)."""
    return state_marker(additional_layer_stores(conf))


def is_lazy_mode(mode: str) -> bool:
    """Whether a pull mode's value (`startup.modes.PullMode`) pulls through the store."""
    return str(mode) in LAZY_MODES


def pool_toggle_markers(from_mode: str, to_mode: str) -> tuple[str, str]:
    """(marker before, marker after) a pool toggle from `from_mode` to `to_mode` (mode values)."""
    before = state_marker((ALS_ENTRY,)) if is_lazy_mode(from_mode) else ""
    if not is_lazy_mode(to_mode):
        return before, ""
    if before:  # lazy -> lazy: the MachineConfig changed the store itself
        return before, f'version={MARKER_VERSION};store-format={STORE_FORMAT + 1};ALS="{ALS_ENTRY}"'
    return before, state_marker((ALS_ENTRY,))
