"""The emulator against its references, measured in the same run (loopback only).

1. Cold read of one small file through the lazy store vs the ideal (the configured latency +
   bytes/bandwidth: registry_mock delays each response by `latency_s`, then paces the body), on
   registry_mock links of 10 Mbit/s .. 1 Gbit/s and 1 .. 100 ms RTT (goal: within 10%). The
   registry runs in its own process; the floor row is the same request on an unshaped link with no
   latency (what one HTTP request over loopback costs here: client + server + kernel), the idle rows
   the same after the client sat idle as long as a 10/100 ms RTT keeps it (this host answers slower
   after idling: that much of the overhead at that RTT is the host's), the reference row Debian's
   docker-registry (Go) answering curl's Range GETs of the same size on one keep-alive connection.
   Each row also times the same Range GET from a minimal blocking-socket client ("bare": what the
   link, the registry and the host cost without the lazy store), and the host rows time a tiny
   request/answer between two Python processes over loopback TCP after 0-100 ms idle (the least
   any exchange costs here, against the 0.1 ms that 10% of a 1 ms RTT allows).
2. Sequential read of a large file (1 MiB reads, chunk and 50 kB-block granularity) vs the link
   rate, readahead off and on (the link is one pipe: per-connection and egress rate equal, so
   concurrent readahead fetches share it).
3. Our `full` pull vs `podman pull` of the same gzip image from the same registry (Debian's
   docker-registry, image pushed by skopeo); ratio of medians (goal: <= 1, at least as fast).
Run: .venv/bin/python benchmarks/bench_emulator.py [--quick] [--section N ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration" / "emulator"))

from emulator.cache import make_node_cache  # noqa: E402
from emulator.client import RegistryClient  # noqa: E402
from emulator.lazyview import VIEW_READAHEAD, open_store  # noqa: E402
from emulator.modes import StartSpec, run_start  # noqa: E402
from emulator.node import EmulatedNode  # noqa: E402
from emulator.readahead import ReadaheadPolicy  # noqa: E402
from emulator.reference import parse_reference  # noqa: E402
from emulator.store import Granularity, StoreOptions  # noqa: E402
from imageformat.build import build_image  # noqa: E402
from imageformat.sampletree import write_sample_tree  # noqa: E402
from registry_mock import preciseloop  # noqa: E402
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
from registry_mock import preciseloop
from registry_mock.app import start_registry
from registry_mock.config import LinkSpec, RegistrySpec
from registry_mock.disk import DiskStorage

async def main():
    bw, rtt, root, log = float(sys.argv[1]) or None, float(sys.argv[2]), sys.argv[3], sys.argv[4]
    egress = bw if sys.argv[5] == "egress" else None
    link = LinkSpec(bandwidth_bytes_per_s=bw, egress_bandwidth_bytes_per_s=egress, latency_s=rtt)
    spec = RegistrySpec(link=link, access_log=log)
    reg = await start_registry(spec, storage=DiskStorage(root))
    print(reg.address, flush=True)
    await asyncio.Event().wait()

preciseloop.run(main())
"""


@contextlib.contextmanager
def registry_process(root: Path, bw: float, rtt: float, log: Path, *, egress: bool = False) -> Iterator[str]:
    """registry_mock in its own process (no GIL shared with the client); yields host:port.
    `bw` 0 = unshaped; `egress`: the registry-wide egress has the same rate (one shared pipe)."""
    log.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", _SERVE, str(bw), str(rtt), str(root), str(log), "egress" if egress else "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclasses.dataclass(frozen=True)
class ColdRead:
    median_s: float
    min_s: float
    ideal_s: float
    server_s: float  # the registry's own median time for the request (access log)
    nbytes: int
    bare_s: float  # median of the same Range GET by a minimal blocking-socket client, same link

    @property
    def bare_ratio(self) -> float:
        return self.bare_s / self.ideal_s if self.ideal_s else math.inf

    @property
    def ratio(self) -> float:
        return self.median_s / self.ideal_s if self.ideal_s else math.inf

    @property
    def min_ratio(self) -> float:
        return self.min_s / self.ideal_s if self.ideal_s else math.inf


def cold_small_read(tmp: Path, bw: float, rtt: float, reps: int, *, idle_s: float = 0.0) -> ColdRead:
    """One cold read of etc/small.conf, `reps` times (the store's cache emptied before each; the
    connection stays open, as a node's would), after `idle_s` of idling. The registry runs in its
    own process."""
    log = tmp / "access.jsonl"
    with registry_process(tmp / "regroot", bw, rtt, log) as address:
        ref = parse_reference(f"{address}/bench/app:v1")

        async def run() -> tuple[list[float], int]:
            async with RegistryClient() as client:
                store = await open_store(client, ref, cache=make_node_cache(memory_bytes=64 << 20))
                times, nbytes = [], 0
                for _ in range(reps + 1):  # the first one warms the code paths (not counted)
                    store.cache = make_node_cache(memory_bytes=64 << 20)
                    before = store.totals().bytes_on_demand
                    if idle_s:
                        await asyncio.sleep(idle_s)
                    t0 = time.perf_counter()
                    data = await store.read("etc/small.conf", 0, 1 << 20)
                    times.append(time.perf_counter() - t0)
                    assert len(data) == 2400
                    nbytes = store.totals().bytes_on_demand - before
                return times[1:], nbytes

        times, nbytes = preciseloop.run(run())
        time.sleep(0.1)  # the access-log line of the last response
        records = [json.loads(line) for line in log.read_text().splitlines()]
        reads = [r for r in records if r.get("range") and r["bytes_sent"] == nbytes]
        server = [r["duration_s"] for r in reads][-reps:]
        bare = bare_gets(address, reads[-1]["path"], reads[-1]["range"], reps, idle_s=idle_s)
    ideal = rtt + (nbytes / bw if bw else 0.0)
    median = statistics.median
    return ColdRead(median(times), min(times), ideal, median(server), nbytes, median(bare))


def timed_exchanges(sock: socket.socket, exchange: Callable[[socket.socket], None], reps: int,
                    idle_s: float) -> list[float]:
    """Seconds per `exchange(sock)` on a TCP_NODELAY socket, `reps` times after one warm-up, each
    after `idle_s` of idling."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(reps + 1):
        if idle_s:
            time.sleep(idle_s)
        t0 = time.perf_counter()
        exchange(sock)
        times.append(time.perf_counter() - t0)
    return times[1:]


def bare_gets(address: str, path: str, byte_range: str, reps: int, *, idle_s: float = 0.0) -> list[float]:
    """Seconds per `GET path` with `Range: byte_range` from a minimal client: one keep-alive socket,
    the request prebuilt, a blocking read of head and Content-Length body — what the link, the
    registry and this host cost for the exchange, without the lazy store around it."""
    host, port = address.rsplit(":", 1)
    request = f"GET {path} HTTP/1.1\r\nHost: {address}\r\nRange: {byte_range}\r\n\r\n".encode()

    def get(sock: socket.socket) -> None:
        sock.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, body = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 206"), head[:40]
        length = next(int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")[1:])
                      if k.strip().lower() == b"content-length")
        while len(body) < length:
            body += sock.recv(65536)

    with socket.create_connection((host, int(port))) as sock:
        return timed_exchanges(sock, get, reps, idle_s)


_ECHO = """
import socket, sys
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while data := conn.recv(256):
    conn.sendall(b"x" * 33)
"""


def host_round_trips(idle_s: float, reps: int) -> list[float]:
    """Seconds per 3-byte request / 33-byte answer between two Python processes over loopback TCP,
    after `idle_s` of idling: the least any request/response exchange costs on this host."""

    def ping(sock: socket.socket) -> None:
        sock.sendall(b"GET")
        got = 0
        while got < 33:
            got += len(sock.recv(256))

    proc = subprocess.Popen([sys.executable, "-c", _ECHO], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as sock:
            return timed_exchanges(sock, ping, reps, idle_s)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sequential(
    tmp: Path, bw: float, rtt: float, gran: Granularity, readahead: ReadaheadPolicy
) -> tuple[float, int]:
    """(seconds, bytes moved) to read usr/bin/big.bin start to end in 1 MiB reads."""
    with registry_process(tmp / "regroot", bw, rtt, tmp / "seq.jsonl", egress=True) as address:
        ref = parse_reference(f"{address}/bench/app:v1")

        async def run() -> tuple[float, int]:
            async with RegistryClient() as client:
                options = StoreOptions(granularity=gran, readahead=readahead)
                cache = make_node_cache(memory_bytes=256 << 20)
                store = await open_store(client, ref, cache=cache, options=options)
                t0 = time.perf_counter()
                off = 0
                while True:
                    data = await store.read("usr/bin/big.bin", off, 1 << 20)
                    if not data:
                        break
                    off += len(data)
                dt = time.perf_counter() - t0
                await store.close()
                t = store.totals()
                return dt, t.bytes_on_demand + t.bytes_readahead

        return preciseloop.run(run())


def reference_floor(tmp: Path, reps: int) -> list[float] | None:
    """Seconds per 2.4 kB Range GET of docker-registry + curl, `reps` on one keep-alive connection."""
    if not (shutil.which("curl") and shutil.which("docker-registry")):
        return None
    from emulator_imagetools import docker_registry

    blob = (tmp / "tree" / "usr" / "bin" / "big.bin").read_bytes()[: 1 << 20]
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with docker_registry(tmp / "floorreg") as reg:
        base = f"http://{reg.host}/v2/bench/floor"
        post = urllib.request.Request(f"{base}/blobs/uploads/", method="POST")
        with urllib.request.urlopen(post) as r:
            location = urllib.parse.urljoin(base, r.headers["Location"])
        sep = "&" if "?" in location else "?"
        put = urllib.request.Request(
            f"{location}{sep}digest={digest}",
            data=blob,
            method="PUT",
            headers={"Content-Type": "application/octet-stream"},
        )
        urllib.request.urlopen(put).close()
        url = f"{base}/blobs/{digest}"
        args = [a for _ in range(reps + 1) for a in (url, "-o", "/dev/null")]
        out = subprocess.run(
            ["curl", "-s", "-r", "1000-3399", "-w", "%{time_total}\n", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return [float(x) for x in out.split()][1:]  # the first one opens the connection


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

            ours.append(preciseloop.run(one()))
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


def cold_reads(tmp: Path, reps_cold: int) -> None:
    print("1. cold read of one small file (2.4 kB, one chunk) vs ideal = latency + bytes/bandwidth")
    print("   (server = the registry's own time for the request; overhead = median - ideal;")
    print("    bare = the same Range GET from a minimal blocking-socket client on the same link:")
    print("    what link + registry + host cost without the lazy store; store adds = median - bare)")
    print("   host: one tiny request/answer between two Python processes over loopback TCP")
    for idle_ms in (0, 1, 10, 100):
        ts = host_round_trips(idle_ms / 1e3, reps_cold if idle_ms < 100 else reps_cold // 2)
        print(
            f"   {'host':>10} {0:>4} ms {33:>6} {statistics.median(ts) * 1e3:>7.3f}ms "
            f"{min(ts) * 1e3:>7.3f}ms" + (f"   after {idle_ms} ms idle" if idle_ms else "   back to back")
        )
    print(
        f"   {'link':>10} {'rtt':>7} {'bytes':>6} {'median':>9} {'min':>9} {'ideal':>9} {'ratio':>6} "
        f"{'min/ideal':>9} {'server':>9} {'overhead':>9} {'bare':>9} {'bare/ideal':>10} {'store adds':>10}"
    )
    for idle_ms in (0, 10, 100):
        n = reps_cold if idle_ms < 100 else reps_cold // 2
        c = cold_small_read(tmp, 0, 0, n, idle_s=idle_ms / 1e3)
        print(
            f"   {'floor':>10} {0:>4} ms {c.nbytes:>6} {c.median_s * 1e3:>7.2f}ms "
            f"{c.min_s * 1e3:>7.2f}ms {'':>33} {c.server_s * 1e3:>7.2f}ms {'':>9} "
            f"{c.bare_s * 1e3:>7.2f}ms {'':>10} {(c.median_s - c.bare_s) * 1e3:>8.2f}ms"
            + (f"   after {idle_ms} ms idle" if idle_ms else "")
        )
    ref = reference_floor(tmp, reps_cold)
    if ref:
        print(
            f"   {'reference':>10} {0:>4} ms {2400:>6} {statistics.median(ref) * 1e3:>7.2f}ms "
            f"{min(ref) * 1e3:>7.2f}ms   docker-registry + curl"
        )
    rows = [(bw, rtt) for bw in (10, 100, 1000) for rtt in (1, 10, 100)]
    for bw_mbit, rtt_ms in rows:
        n = reps_cold if rtt_ms < 100 else reps_cold // 2
        c = cold_small_read(tmp, bw_mbit * MBIT, rtt_ms / 1e3, n)
        link = f"{bw_mbit:>5} Mb/s"
        print(
            f"   {link} {rtt_ms:>4} ms {c.nbytes:>6} {c.median_s * 1e3:>7.2f}ms {c.min_s * 1e3:>7.2f}ms "
            f"{c.ideal_s * 1e3:>7.2f}ms {c.ratio:>6.3f} {c.min_ratio:>9.3f} "
            f"{c.server_s * 1e3:>7.2f}ms {(c.median_s - c.ideal_s) * 1e3:>7.2f}ms "
            f"{c.bare_s * 1e3:>7.2f}ms {c.bare_ratio:>10.3f} {(c.median_s - c.bare_s) * 1e3:>8.2f}ms"
        )


def sequential_reads(tmp: Path, reps_seq: int) -> None:
    print("2. sequential read of a 24 MiB file in 1 MiB reads vs the link rate (RTT 1 ms, one pipe)")
    for bw_mbit in (100, 1000):
        for gran in (Granularity.CHUNK, Granularity.BLOCK):
            for name, ra in (("off", ReadaheadPolicy()), ("on", VIEW_READAHEAD)):
                runs = sorted(sequential(tmp, bw_mbit * MBIT, 0.001, gran, ra) for _ in range(reps_seq))
                dt, moved = runs[len(runs) // 2]
                rate, best = moved / dt / MBIT, runs[0][1] / runs[0][0] / MBIT
                print(
                    f"   {bw_mbit:>5} Mb/s {gran.value:>5} readahead {name:>3}: {moved / 1e6:.1f} MB in "
                    f"{dt:.3f} s = {rate:.0f} Mb/s ({rate / bw_mbit:.2f} of the link, "
                    f"median of {len(runs)}; best {best / bw_mbit:.2f})"
                )


def full_pulls(tmp: Path, reps: int) -> None:
    print("3. full pull (download + extract) vs podman pull, same image (48 MiB gzip), docker-registry")
    res = full_vs_podman(tmp, min(reps, 3))
    if res:
        ours, theirs = res
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(
            f"   ours {mo:.2f} s (runs {', '.join(f'{x:.2f}' for x in ours)}), podman {mt:.2f} s "
            f"(runs {', '.join(f'{x:.2f}' for x in theirs)}); ratio ours/podman = {mo / mt:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--section", type=int, choices=(1, 2, 3), action="append",
                    help="run only this section (repeatable; default: all)")
    args = ap.parse_args()
    sections = set(args.section or (1, 2, 3))
    reps = 1 if args.quick else 5
    reps_cold = 6 if args.quick else 20
    reps_seq = 1 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as d:
        tmp = Path(d)
        build(tmp)
        if 1 in sections:
            cold_reads(tmp, reps_cold)
        if 2 in sections:
            sequential_reads(tmp, reps_seq)
        if 3 in sections:
            full_pulls(tmp, reps)

if __name__ == "__main__":
    main()
