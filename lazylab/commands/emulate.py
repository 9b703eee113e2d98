"""`lazylab emulate SCENARIO.toml`: the scenario run for real, small, on this machine.

Wiring only: builds the scenario's synthetic images (or takes its OCI layouts), imports them
into an in-memory `registry_mock` shaped like the scenario's network, runs the emulated
cluster (`emulator.cluster`) against it, and writes next to each other in --out:
`effective-config.toml`, `records.csv` (StartupRecords), `registry-timeline.csv` (bytes sent
and concurrent transfers per bin, from the registry's access log), `access-log.jsonl`, and
`node-cpu.csv` (each node's CPU seconds, where a node has a process of its own or is alone).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
from pathlib import Path

from emulator.cluster import image_files, link_parameters, registry_timeline, run_cluster, workload_traces
from emulator.errors import EmulatorError
from emulator.reference import parse_reference
from emulator.synthbuild import build_synthetic_images
from imageformat.errors import FormatError
from lazylab import cli
from registry_mock import preciseloop
from startup.record import percentile, write_csv
from startup.scenario import OciImageSpec, ScenarioError, SyntheticImageSpec
from startup.scenario_io import load_scenario, write_effective_config

for _err in (EmulatorError, FormatError, ScenarioError):
    if _err not in cli.USER_ERRORS:
        cli.USER_ERRORS.append(_err)


def _emulate(args: argparse.Namespace) -> int:
    from registry_mock.app import running_registry
    from registry_mock.config import LinkSpec, RegistrySpec
    from registry_mock.importer import import_oci_layout
    from registry_mock.storage import MemoryStorage

    scenario = load_scenario(args.scenario, overrides=args.set or [])
    out = Path(args.out or f"emulate-out/{scenario.name}")
    out.mkdir(parents=True, exist_ok=True)
    write_effective_config(scenario, out / "effective-config.toml")
    with tempfile.TemporaryDirectory(prefix="lazylab-emulate-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        layouts: dict[str, tuple[Path, str | None]] = {}
        synthetic = [img for img in scenario.images if isinstance(img, SyntheticImageSpec)]
        if synthetic:
            print(f"building {len(synthetic)} synthetic image(s)...", flush=True)
            for name, path in build_synthetic_images(synthetic, work / "images", scenario.seed).items():
                layouts[name] = (path, "latest")
        for img in scenario.images:
            if isinstance(img, OciImageSpec):
                layouts[img.name] = (Path(scenario.resolve_path(img.layout)), img.tag)
        storage = MemoryStorage()
        for name, (layout, tag) in layouts.items():
            import_oci_layout(layout, f"lab/{name.lower()}", tag or "latest", storage)
        files = {name: image_files(layout, tag) for name, (layout, tag) in layouts.items()}
        traces = workload_traces(scenario, files)
        link = LinkSpec(**link_parameters(scenario))
        with running_registry(RegistrySpec(link=link), storage=storage) as reg:
            refs = {
                name: parse_reference(f"{reg.address}/lab/{name.lower()}:{tag or 'latest'}")
                for name, (_, tag) in layouts.items()
            }
            print(
                f"emulating {scenario.cluster.nodes} node(s), mode {scenario.mode.value}, "
                f"registry {reg.address}",
                flush=True,
            )
            result = preciseloop.run(
                run_cluster(scenario, refs, traces, work / "nodes", disk_cache=not args.memory_cache,
                            node_processes=args.node_processes, loop_factory=preciseloop.new_event_loop)
            )
            log = reg.records
    write_csv(result.records, out / "records.csv")
    with open(out / "access-log.jsonl", "w") as fh:
        for entry in log:
            fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
    timeline = registry_timeline(log, origin_epoch_s=result.origin_epoch_s, bin_s=args.bin_s)
    with open(out / "registry-timeline.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["t_s", "bytes_sent", "concurrent_transfers"])
        w.writeheader()
        w.writerows(timeline)
    with open(out / "node-cpu.csv", "w", newline="") as fh:
        fh.write("node,cpu_s\n")
        fh.writelines(f"{node},{cpu!r}\n" for node, cpu in sorted(result.node_cpu_s.items()))
    ok = [r for r in result.records if r.ok]
    ttr = [r.time_to_ready_s for r in ok]
    print(
        f"{len(ok)}/{len(result.records)} pods ready in {result.wall_s:.2f} s; time to ready "
        f"p50 {percentile(ttr, 50):.3f} s, p90 {percentile(ttr, 90):.3f} s; "
        f"{sum(r.bytes_fetched for r in result.records):,} bytes fetched -> {out}"
    )
    failed = [r for r in result.records if r.error]
    for r in failed[:5]:
        print(f"  {r.pod} on {r.node}: {r.error}")
    return 1 if failed or any(math.isnan(r.ready_s) for r in result.records) else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `lazylab emulate`."""
    p = sub.add_parser(
        "emulate", help="run a scenario for real: emulated nodes against a shaped registry_mock"
    )
    p.add_argument("scenario", metavar="SCENARIO.toml")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a scenario value (repeatable)"
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default: emulate-out/<scenario name>)")
    p.add_argument(
        "--work-dir", metavar="DIR", help="where node roots and caches live (default: system temp)"
    )
    p.add_argument("--bin-s", type=float, default=0.1, help="registry timeline bin width (seconds)")
    p.add_argument("--memory-cache", action="store_true", help="nodes cache in memory only (no disk cache)")
    p.add_argument("--node-processes", action="store_true",
                   help="run each node in a process of its own (nodes then compete for the host's cores, "
                        "not for one interpreter's lock)")
    p.set_defaults(func=_emulate)
