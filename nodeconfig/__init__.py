"""nodeconfig: the OpenShift lazy-image-pull proposal's node configuration, as pure functions.

Owns: parsing a `ContainerRuntimeConfig` (`crc`), rendering what the machine config operator
lays down on a node of a pool (`render`: stargz-store unit, storage.conf.d drop-in, store config,
state marker), loading storage.conf with its drop-ins and deriving the node's pull mode
(`storageconf`), and the boot-time `check-layer-state` decision (`layerstate`). No I/O beyond
reading/writing the files a caller names; no HTTP, FUSE or simulator imports.
"""

from nodeconfig.crc import ContainerRuntimeConfig, LazyPullMode, load_crc, parse_crc
from nodeconfig.errors import CrcError, LayerStateError, NodeConfigError, StorageConfError
from nodeconfig.layerstate import ImageRecord, LayerStateDecision, Transition, check_layer_state
from nodeconfig.markers import marker_for_storage_conf, pool_toggle_markers
from nodeconfig.render import RenderedNode, render_node, state_marker
from nodeconfig.storageconf import NodePullMode, load_storage_conf, merge_storage_conf, node_pull_mode

__all__ = [
    "ContainerRuntimeConfig",
    "CrcError",
    "ImageRecord",
    "LayerStateDecision",
    "LayerStateError",
    "LazyPullMode",
    "NodeConfigError",
    "NodePullMode",
    "RenderedNode",
    "StorageConfError",
    "Transition",
    "check_layer_state",
    "load_crc",
    "load_storage_conf",
    "marker_for_storage_conf",
    "merge_storage_conf",
    "node_pull_mode",
    "parse_crc",
    "pool_toggle_markers",
    "render_node",
    "state_marker",
]
