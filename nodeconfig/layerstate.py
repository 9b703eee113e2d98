"""check-layer-state: what a node does at boot when its lazy-pull configuration changed.

The node keeps a state file holding the marker it last booted with; the configuration implies a
marker (`nodeconfig.render.state_marker`: `version=1;store-format=1;ALS="..."`, empty when lazy
pulling is off). At boot:
  * markers equal -> nothing to do;
  * markers differ (off->on, on->off, another store or store format) -> remove every image with
    layers in an Additional Layer Store (pulled lazily: their layers point into the store, which
    is gone or changed), then record the new marker;
  * no state file (None) -> treated as "differs": the node cannot prove its lazily pulled images
    match the store, so it removes them. On a genuinely first boot there are none, so this is the
    same as "first boot: record the marker"; on a node whose state file was lost it is the safe
    choice (a re-pull is cheap for lazy images; a dangling ALS layer breaks containers).
Pure: the caller reads/writes the state file and deletes the images; the simulator's
pool-toggle scenario calls the same function so both engines agree on what a toggle costs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from nodeconfig.errors import LayerStateError

_MARKER_RE = re.compile(r'^version=(\d+);store-format=(\d+);ALS="([^"]*)"$')


@dataclass(frozen=True, kw_only=True)
class ImageRecord:
    reference: str
    als_layers: int = 0  # layers of this image that live in an Additional Layer Store
    size_bytes: int = 0  # bytes this image occupies locally (for cost accounting)

    def __post_init__(self) -> None:
        if self.als_layers < 0:
            raise ValueError(f"als_layers (={self.als_layers}) must be >= 0")
        if self.size_bytes < 0:
            raise ValueError(f"size_bytes (={self.size_bytes}) must be >= 0")

    @property
    def lazily_pulled(self) -> bool:
        return self.als_layers > 0


class Transition(StrEnum):
    UNCHANGED = "unchanged"
    ENABLED = "off->on"
    DISABLED = "on->off"
    RECONFIGURED = "on->on (different store)"
    NO_STATE = "no state file"
    CORRUPT_STATE = "unreadable state file"  # handled like NO_STATE


@dataclass(frozen=True, kw_only=True)
class LayerStateDecision:
    transition: Transition
    remove: tuple[ImageRecord, ...]  # images to delete before CRI-O serves requests
    new_state: str  # what to write to the state file

    @property
    def changed(self) -> bool:
        return self.transition is not Transition.UNCHANGED

    @property
    def removed_bytes(self) -> int:
        return sum(i.size_bytes for i in self.remove)


def parse_marker(marker: str) -> tuple[int, int, tuple[str, ...]] | None:
    """(version, store_format, stores) of a marker; None for the empty (lazy off) marker."""
    text = marker.strip()
    if not text:
        return None
    m = _MARKER_RE.match(text)
    if m is None:
        raise LayerStateError(f'marker {text!r} does not match version=N;store-format=N;ALS="..."')
    stores = tuple(s for s in m.group(3).split(",") if s)
    return int(m.group(1)), int(m.group(2)), stores


def check_layer_state(
    previous_marker: str | None, current_marker: str, images: Sequence[ImageRecord]
) -> LayerStateDecision:
    """Compare the state file (`previous_marker`, None when absent) with the configuration's marker."""
    current = current_marker.strip()
    parse_marker(current)  # reject malformed configuration markers early
    lazy = tuple(i for i in images if i.lazily_pulled)
    if previous_marker is None:
        return LayerStateDecision(transition=Transition.NO_STATE, remove=lazy, new_state=current)
    previous = previous_marker.strip()
    if previous == current:
        return LayerStateDecision(transition=Transition.UNCHANGED, remove=(), new_state=current)
    try:
        before = parse_marker(previous)
    except LayerStateError:
        return LayerStateDecision(transition=Transition.CORRUPT_STATE, remove=lazy, new_state=current)
    if before is None:
        transition = Transition.ENABLED
    elif not current:
        transition = Transition.DISABLED
    else:
        transition = Transition.RECONFIGURED
    return LayerStateDecision(transition=transition, remove=lazy, new_state=current)
