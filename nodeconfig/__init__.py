"""nodeconfig: the OpenShift lazy-image-pull proposal's node configuration, as pure functions.

Owns: parsing a `ContainerRuntimeConfig` (`crc`), rendering what the machine config operator
lays down on a node of a pool (`render`: stargz-store unit, storage.conf.d drop-in, store config,
state marker), loading storage.conf with its drop-ins and deriving the node's pull mode
(`storageconf`), and the boot-time `check-layer-state` decision (`layerstate`). No I/O beyond
reading/writing the files a caller names; no HTTP, FUSE or simulator imports.
"""

from nodeconfig.errors import CrcError, NodeConfigError, StorageConfError

__all__ = ["CrcError", "NodeConfigError", "StorageConfError"]
