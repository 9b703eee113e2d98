"""`lazylab node`: the proposal's node configuration (render, check-layer-state)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lazylab.cli import USER_ERRORS, CliError
from nodeconfig.crc import load_crc
from nodeconfig.errors import NodeConfigError
from nodeconfig.layerstate import ImageRecord, check_layer_state
from nodeconfig.render import render_node, write_rendered
from registry_mock import preciseloop

USER_ERRORS.append(NodeConfigError)


def _render(args: argparse.Namespace) -> int:
    crc = load_crc(args.config)
    node = render_node(crc, args.pool)
    if args.output is None:
        for f in node.files:
            print(f"==> {f.path} <==")
            print(f.content, end="" if f.content.endswith("\n") or not f.content else "\n")
        for p in node.absent:
            print(f"==> {p} <== (absent)")
        return 0
    written = write_rendered(node, args.output)
    for w in written:
        print(w)
    for p in node.absent:
        print(f"absent: {p}")
    return 0


def _check(args: argparse.Namespace) -> int:
    state_path = Path(args.state_file)
    previous = state_path.read_text() if state_path.exists() else None
    if args.config is not None:
        current = render_node(load_crc(args.config), args.pool).marker
    else:
        current = args.marker or ""
    images: list[ImageRecord] = []
    if args.images is not None:
        try:
            raw = json.loads(Path(args.images).read_text())
            images = [ImageRecord(**r) for r in raw]
        except (OSError, ValueError, TypeError) as e:
            raise CliError(f"--images {args.images}: expected a JSON list of image records ({e})") from None
    decision = check_layer_state(previous, current, images)
    print(f"transition: {decision.transition.value}")
    for img in decision.remove:
        print(f"remove: {img.reference}")
    if args.apply:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(decision.new_state)
    return 0


def _boot(args: argparse.Namespace) -> int:
    import tempfile

    from emulator.node import EmulatedNode
    from emulator.nodeboot import BootRecord, boot_node, default_state_file

    root = Path(args.root)
    if not root.is_dir():
        raise CliError(f"--root {args.root}: not a directory")
    state = Path(args.state_file) if args.state_file else default_state_file(root)

    async def run(work: str) -> BootRecord:
        node = EmulatedNode(args.name, work, disk_cache=False)
        try:
            return await boot_node(node, root, state_file=state)
        finally:
            await node.close()

    with tempfile.TemporaryDirectory(prefix="lazylab-boot-") as work:
        record = preciseloop.run(run(work))
    print(f"pull mode: {record.pull_mode.value}")
    print(f"marker: {record.marker!r}")
    was = "absent" if record.previous_marker is None else repr(record.previous_marker)
    print(f"state file: {state} (was {was})")
    print(f"transition: {record.decision.transition.value}")
    for ref in record.removed:
        print(f"removed: {ref}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("node", help="render a ContainerRuntimeConfig into node files; check-layer-state")
    nsub = p.add_subparsers(dest="node_command", metavar="ACTION")
    nsub.required = True
    r = nsub.add_parser("render", help="write what the machine config operator lays down on a node")
    r.add_argument("--config", required=True, help="ContainerRuntimeConfig YAML")
    r.add_argument("--pool", default=None, help="machine config pool (default: the one the selector names)")
    r.add_argument("-o", "--output", default=None, help="directory to write into (mirrors absolute paths)")
    r.set_defaults(func=_render)
    c = nsub.add_parser("check-layer-state", help="compare the state file with the configuration's marker")
    c.add_argument("--state-file", required=True)
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--config", default=None, help="ContainerRuntimeConfig YAML implying the marker")
    g.add_argument("--marker", default=None, help="the current marker directly ('' = lazy off)")
    c.add_argument("--pool", default=None)
    c.add_argument("--images", default=None, help='JSON list of {"reference":..,"als_layers":N}')
    c.add_argument("--apply", action="store_true", help="write the new state to the state file")
    c.set_defaults(func=_check)
    b = nsub.add_parser(
        "boot", help="boot an emulated node from a configuration root: pull mode, check-layer-state"
    )
    b.add_argument("--root", required=True, help="node root with etc/containers/storage.conf(.d)")
    b.add_argument("--state-file", default=None, help="default: ROOT/var/lib/crio/layer-state")
    b.add_argument("--name", default="node-0")
    b.set_defaults(func=_boot)
