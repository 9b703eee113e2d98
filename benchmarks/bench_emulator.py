"""The emulator against its references, measured in the same run (loopback only).

1. Cold read of one small file through the lazy store vs the ideal (1 RTT + bytes/bandwidth), on
   registry_mock links of 10 Mbit/s .. 1 Gbit/s and 1 .. 100 ms RTT (goal: within 10%).
2. Sequential read of a large file (1 MiB reads, chunk and 50 kB-block granularity) vs the link rate.
3. Our `full` pull vs `podman pull` of the same gzip image from the same registry (Debian's
   docker-registry, image pushed by skopeo); ratio of medians (goal: <= 1, at least as fast).
Run: .venv/bin/python benchmarks/bench_emulator.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration" / "emulator"))

from emulator.cache import make_node_cache  # noqa: E402
from emulator.client import RegistryClient  # noqa: E402
from emulator.lazyview import open_store  # noqa: E402
from emulator.modes import StartSpec, run_start  # noqa: E402
from emulator.node import EmulatedNode  # noqa: E402
from emulator.reference import parse_reference  # noqa: E402
from emulator.store import Granularity, StoreOptions  # noqa: E402
from imageformat.build import build_image  # noqa: E402
from imageformat.sampletree import write_sample_tree  # noqa: E402
from registry_mock.app import start_registry  # noqa: E402
from registry_mock.config import LinkSpec, RegistrySpec  # noqa: E402
from registry_mock.importer import import_oci_layout  # noqa: E402
from registry_mock.storage import MemoryStorage  # noqa: E402
from startup.modes import PullMode  # noqa: E402

MBIT = 1e6 / 8


def build(tmp: Path) -> tuple[MemoryStorage, dict[str, int]]:
    tree = tmp / "tree"
    write_sample_tree(tree, total_bytes=8 << 20, seed=11)
    big = tree / "usr" / "bin" / "big.bin"
    big.write_bytes(__import__("numpy").random.default_rng(5).bytes(24 << 20))
    (tree / "etc" / "small.conf").write_bytes(b"key = value\n" * 200)  # 2.4 kB
    storage = MemoryStorage()
    build_image(tree, tmp / "oci", "v1", "zstd:chunked")
    import_oci_layout(tmp / "oci", "bench/app", "v1", storage)
    import_oci_layout(tmp / "oci", "bench/app", "v1", tmp / "regroot")
    return storage, {"small": 2400, "big": 24 << 20}


_SERVE = """
import asyncio, sys
from registry_mock.app import start_registry
from registry_mock.config import LinkSpec, RegistrySpec
from registry_mock.disk import DiskStorage

async def main():
    bw, rtt, root, log = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
    spec = RegistrySpec(link=LinkSpec(bandwidth_bytes_per_s=bw, latency_s=rtt), access_log=log)
    reg = await start_registry(spec, storage=DiskStorage(root))
    print(reg.address, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@contextlib.contextmanager
def registry_process(root: Path, bw: float, rtt: float, log: Path) -> Iterator[str]:
    """registry_mock in its own process (no GIL shared with the client); yields host:port."""
    log.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", _SERVE, str(bw), str(rtt), str(root), str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cold_small_read(storage: Path, bw: float, rtt: float, reps: int) -> tuple[float, float, float, int]:
    """(median measured s, ideal s, median server time s, bytes) of one cold read of etc/small.conf.

    The registry runs in its own process (`lazylab registry serve`)."""
    measured, ideal, server, nbytes = [], [], [], 0
    log = storage / "access.jsonl"
    with registry_process(storage / "regroot", bw, rtt, log) as address:
        ref = parse_reference(f"{address}/bench/app:v1")

        async def once() -> tuple[float, int]:
            async with RegistryClient() as client:
                store = await open_store(client, ref, cache=make_node_cache(memory_bytes=64 << 20))
                before = store.totals()
                t0 = time.perf_counter()
                data = await store.read("etc/small.conf", 0, 1 << 20)
                dt = time.perf_counter() - t0
                assert len(data) == 2400
                return dt, store.totals().bytes_on_demand - before.bytes_on_demand

        for _ in range(reps):
            dt, nbytes = asyncio.run(once())
            measured.append(dt)
            ideal.append(rtt + nbytes / bw)
            server.append(float(json.loads(log.read_text().splitlines()[-1])["duration_s"]))
    return (
        statistics.median(measured),
        min(measured),
        statistics.median(ideal),
        statistics.median(server),
        nbytes,
    )


async def sequential(storage: MemoryStorage, bw: float, rtt: float, gran: Granularity) -> tuple[float, int]:
    link = LinkSpec(bandwidth_bytes_per_s=bw, latency_s=rtt)
    async with await start_registry(RegistrySpec(link=link), storage=storage) as reg:
        ref = parse_reference(f"{reg.address}/bench/app:v1")
        async with RegistryClient() as client:
            store = await open_store(
                client,
                ref,
                cache=make_node_cache(memory_bytes=256 << 20),
                options=StoreOptions(granularity=gran),
            )
            t0 = time.perf_counter()
            off = 0
            while True:
                data = await store.read("usr/bin/big.bin", off, 1 << 20)
                if not data:
                    break
                off += len(data)
            dt = time.perf_counter() - t0
            moved = store.totals().bytes_on_demand
    return dt, moved


def full_vs_podman(tmp: Path, reps: int) -> tuple[list[float], list[float]] | None:
    if not (shutil.which("podman") and shutil.which("skopeo") and shutil.which("docker-registry")):
        print("  (podman/skopeo/docker-registry missing: skipped)")
        return None
    from emulator_imagetools import docker_registry

    tree = tmp / "ptree"
    write_sample_tree(tree, total_bytes=48 << 20, seed=3)
    build_image(tree, tmp / "poci", "v1", "gzip")
    with docker_registry(tmp / "dreg") as reg:
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--dest-tls-verify=false",
                f"oci:{tmp / 'poci'}:v1",
                f"docker://{reg.host}/bench/full:v1",
            ],
            check=True,
            capture_output=True,
        )
        ref = parse_reference(f"{reg.host}/bench/full:v1")
        ours, theirs = [], []
        for i in range(reps):
            node_dir = tmp / f"node{i}"

            async def one(node_dir: Path = node_dir) -> float:
                node = EmulatedNode("n", node_dir, disk_cache=False)
                try:
                    rec = await run_start(node, ref, StartSpec(mode=PullMode.FULL))
                finally:
                    await node.close()
                assert rec.ok, rec.error
                return rec.pulled_s - rec.submitted_s

            ours.append(asyncio.run(one()))
            shutil.rmtree(node_dir, ignore_errors=True)
            root, run = tmp / f"proot{i}", tmp / f"prun{i}"
            t0 = time.perf_counter()
            podman = ["podman", "--root", str(root), "--runroot", str(run), "--storage-driver", "vfs"]
            r = subprocess.run(
                [*podman, "pull", "--tls-verify=false", "-q", f"{reg.host}/bench/full:v1"],
                capture_output=True,
                text=True,
            )
            theirs.append(time.perf_counter() - t0)
            if r.returncode != 0:
                print(f"  podman pull failed: {r.stderr.strip()[:200]}")
                return None
            subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True)
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(run, ignore_errors=True)
    return ours, theirs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps = 1 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as d:
        tmp = Path(d)
        storage, _ = build(tmp)
        print("1. cold read of one small file (2.4 kB) vs ideal = RTT + bytes/bandwidth")
        print("   (server = the registry's own time for that request; client = measured - server)")
        print(
            f"   {'link':>10} {'rtt':>7} {'bytes':>6} {'median':>9} {'min':>9} {'ideal':>9} {'ratio':>6} "
            f"{'min/ideal':>9} {'server':>9} {'client':>8}"
        )
        for bw_mbit in (10, 100, 1000):
            for rtt_ms in (1, 10, 100):
                m, lo, i, srv, n = cold_small_read(tmp, bw_mbit * MBIT, rtt_ms / 1e3, reps)
                print(
                    f"   {bw_mbit:>5} Mb/s {rtt_ms:>4} ms {n:>6} {m * 1e3:>7.2f}ms {lo * 1e3:>7.2f}ms "
                    f"{i * 1e3:>7.2f}ms {m / i:>6.3f} {lo / i:>9.3f} {srv * 1e3:>7.2f}ms "
                    f"{(m - srv) * 1e3:>6.2f}ms"
                )
        print("2. sequential read of a 24 MiB file in 1 MiB reads vs the link rate (RTT 1 ms)")
        for bw_mbit in (100, 1000):
            for gran in (Granularity.CHUNK, Granularity.BLOCK):
                dt, moved = asyncio.run(sequential(storage, bw_mbit * MBIT, 0.001, gran))
                rate = moved / dt / MBIT
                print(
                    f"   {bw_mbit:>5} Mb/s {gran.value:>5}: {moved / 1e6:.1f} MB in {dt:.2f} s "
                    f"= {rate:.0f} Mb/s ({rate / bw_mbit:.2f} of the link)"
                )
        print("3. full pull (download + extract) vs podman pull, same image (48 MiB gzip), docker-registry")
        res = full_vs_podman(tmp, min(reps, 3))
        if res:
            ours, theirs = res
            mo, mt = statistics.median(ours), statistics.median(theirs)
            print(
                f"   ours {mo:.2f} s (runs {', '.join(f'{x:.2f}' for x in ours)}), podman {mt:.2f} s "
                f"(runs {', '.join(f'{x:.2f}' for x in theirs)}); ratio ours/podman = {mo / mt:.2f}"
            )


if __name__ == "__main__":
    main()
