"""What the machine config operator lays down on a node of a pool for a ContainerRuntimeConfig.

Enabled -> four files:
  * the stargz-store systemd unit, ordered `Before=crio.service` and `RequiredBy=crio.service`
    (CRI-O must not start while the store's mount point is still an empty directory: images
    pulled then would bypass the store);
  * `/etc/containers/storage.conf.d/lazy-image-pull.conf`, a drop-in adding only
    `additionallayerstores = ["/var/lib/stargz-store/store:ref"]` (every other setting of the
    base storage.conf stays, see `nodeconfig.storageconf`);
  * the store's configuration `/etc/stargz-store/config.toml` (stargz-store defaults of
    formats.md §4.4, written out so the node's behaviour is explicit);
  * the state marker `version=1;store-format=1;ALS="<stores>"` that check-layer-state compares
    with the node's state file (`nodeconfig.layerstate`).
Disabled -> only the marker, empty; the other three paths are listed as absent (the operator
removes them).

The marker and state-file locations are this lab's choice (the proposal names the content,
not the path): MARKER_PATH and STATE_FILE_PATH below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from nodeconfig.crc import ContainerRuntimeConfig
from nodeconfig.errors import CrcError

STORE_ROOT = "/var/lib/stargz-store"
STORE_MOUNT = f"{STORE_ROOT}/store"
ALS_ENTRY = f"{STORE_MOUNT}:ref"
UNIT_PATH = "/etc/systemd/system/stargz-store.service"
DROPIN_PATH = "/etc/containers/storage.conf.d/lazy-image-pull.conf"
STORE_CONFIG_PATH = "/etc/stargz-store/config.toml"
MARKER_PATH = "/etc/crio/layer-state.marker"
STATE_FILE_PATH = "/var/lib/crio/layer-state"
MARKER_VERSION = 1
STORE_FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class NodeFile:
    path: str  # absolute path on the node
    content: str
    mode: int = 0o644

    def __post_init__(self) -> None:
        if not PurePosixPath(self.path).is_absolute():
            raise ValueError(f"path (={self.path!r}) must be absolute")


@dataclass(frozen=True, kw_only=True)
class RenderedNode:
    pool: str
    files: tuple[NodeFile, ...]
    absent: tuple[str, ...] = ()  # paths the operator removes for this configuration
    marker: str = ""
    stores: tuple[str, ...] = field(default_factory=tuple)

    def by_path(self) -> Mapping[str, NodeFile]:
        return {f.path: f for f in self.files}


def state_marker(stores: Sequence[str]) -> str:
    """The marker a configuration implies: empty when no Additional Layer Store is configured."""
    if not stores:
        return ""
    return f'version={MARKER_VERSION};store-format={STORE_FORMAT};ALS="{",".join(stores)}"'


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(*, source: str) -> str:
    return f"""# Rendered by the machine config operator ({source}).
[Unit]
Description=stargz-store: Additional Layer Store for lazy image pulling
Documentation=https://github.com/containerd/stargz-snapshotter
Wants=network-online.target
After=network-online.target
Before=crio.service

[Service]
Type=notify
ExecStartPre=/usr/bin/mkdir -p {STORE_MOUNT}
ExecStart=/usr/local/bin/stargz-store --config={STORE_CONFIG_PATH} --root={STORE_ROOT} {STORE_MOUNT}
ExecStopPost=-/usr/bin/fusermount3 -u {STORE_MOUNT}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
RequiredBy=crio.service
"""


def render_dropin(stores: Sequence[str], *, source: str) -> str:
    items = ", ".join(_toml_str(s) for s in stores)
    return f"""# Rendered by the machine config operator ({source}).
# Only the keys below are set; containers/storage merges them over storage.conf.
[storage.options]
additionallayerstores = [{items}]
"""


def render_store_config(*, source: str) -> str:
    return f"""# Rendered by the machine config operator ({source}).
# stargz-store defaults (formats.md section 4.4), written out explicitly.
noprefetch = false
no_background_fetch = false
prefetch_size = 0
prefetch_timeout_sec = 10
max_concurrency = 2
resolve_result_entry_ttl_sec = 120
http_cache_type = "directory"
filesystem_cache_type = "directory"

[blob]
chunk_size = 50000
prefetch_chunk_size = 0
fetching_timeout_sec = 300
max_retries = 5
min_wait_msec = 30
max_wait_msec = 300000
valid_interval = 60
check_always = false
"""


def render_node(crc: ContainerRuntimeConfig, pool: str | None = None) -> RenderedNode:
    """The files for a node of `pool` (default: the single pool the selector names)."""
    pools = crc.pools
    if pool is None:
        if len(pools) != 1:
            raise CrcError(
                "spec.machineConfigPoolSelector.matchLabels: "
                + (f"selects pools {list(pools)}" if pools else "names no standard pool label")
                + "; name the pool with --pool"
            )
        pool = pools[0]
    elif not crc.selects(pool):
        raise CrcError(
            "spec.machineConfigPoolSelector.matchLabels: "
            f"does not select pool {pool!r} (selects {list(pools)})"
        )
    source = f"ContainerRuntimeConfig {crc.name or '(unnamed)'}, pool {pool}"
    if not crc.enabled:
        return RenderedNode(
            pool=pool,
            files=(NodeFile(path=MARKER_PATH, content=""),),
            absent=(UNIT_PATH, DROPIN_PATH, STORE_CONFIG_PATH),
            marker="",
            stores=(),
        )
    stores = (ALS_ENTRY,)
    marker = state_marker(stores)
    files = (
        NodeFile(path=UNIT_PATH, content=render_unit(source=source)),
        NodeFile(path=DROPIN_PATH, content=render_dropin(stores, source=source)),
        NodeFile(path=STORE_CONFIG_PATH, content=render_store_config(source=source)),
        NodeFile(path=MARKER_PATH, content=marker),
    )
    return RenderedNode(pool=pool, files=files, marker=marker, stores=stores)


def write_rendered(node: RenderedNode, out_dir: str | Path) -> list[Path]:
    """Write the files under `out_dir`, mirroring their absolute paths; remove `absent` ones there."""
    root = Path(out_dir)
    written: list[Path] = []
    for f in node.files:
        target = root / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)
        target.chmod(f.mode)
        written.append(target)
    for p in node.absent:
        (root / p.lstrip("/")).unlink(missing_ok=True)
    return written
