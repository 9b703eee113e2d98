"""Benchmark registry_mock against Debian's docker-registry (distribution 2.8, Go) on loopback, same run.

    .venv/bin/python benchmarks/bench_registry.py [--blob-mb 256] [--quick]

Prints: unshaped full-blob GET throughput (curl as the client), request rate of a 1024-range multipart GET,
100 concurrent clients (aggregate MB/s, p50/p99 latency), and the shaping accuracy table (configured vs
achieved rate at 1/10/100/1000 Mbit/s, configured vs measured added latency at 1/20/100 ms).
Both servers run in their own processes; only 127.0.0.1 and free ports are used. Bounded to ~2-3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import free_port

MBIT = 1e6 / 8


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _wait_up(url: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(f"{url}/v2/") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up")
            await asyncio.sleep(0.1)


async def start_reference(tmp: Path) -> Server:
    port = free_port()
    cfg = tmp / "distribution.yml"
    cfg.write_text(
        "version: 0.1\n"
        "log: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp / 'ref-root'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    await _wait_up(url)
    return Server("docker-registry", url, proc)


SERVE_CODE = """
import asyncio, json, sys
from registry_mock import preciseloop
from registry_mock.app import start_registry
from registry_mock.config import LinkSpec, RegistrySpec
async def main():
    regs = []
    for cfg in json.loads(sys.argv[1]):
        link = LinkSpec(**cfg.pop("link", {}))
        regs.append(await start_registry(RegistrySpec(link=link, **cfg)))
    print(json.dumps([r.url for r in regs]), flush=True)
    await asyncio.Event().wait()
preciseloop.run(main())
"""


def start_ours(
    configs: list[dict[str, object]], name: str = "registry_mock"
) -> tuple[subprocess.Popen[bytes], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_CODE, json.dumps(configs)],
        stdout=subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    assert proc.stdout is not None
    urls = json.loads(proc.stdout.readline())
    return proc, urls


# ---------------------------------------------------------------- workload


def make_blob(path: Path, size: int) -> str:
    h = hashlib.sha256()
    chunk = 8 << 20
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            data = os.urandom(n)
            h.update(data)
            f.write(data)
            left -= n
    return "sha256:" + h.hexdigest()


async def push_file(url: str, repo: str, path: Path, digest: str) -> None:
    async def body():  # type: ignore[no-untyped-def]
        with open(path, "rb") as f:
            while chunk := f.read(4 << 20):
                yield chunk

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.post(f"{url}/v2/{repo}/blobs/uploads/") as r:
            assert r.status == 202, await r.text()
            loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else url + loc
        async with s.patch(loc, data=body(), headers={"Content-Type": "application/octet-stream"}) as r:
            assert r.status == 202, await r.text()
            loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else url + loc
        sep = "&" if "?" in loc else "?"
        async with s.put(f"{loc}{sep}digest={digest}") as r:
            assert r.status == 201, await r.text()


def curl_full_get(url: str) -> float:
    """MB/s of one full GET with curl writing to /dev/null."""
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{http_code}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[1] == "200", out
    return float(out[0]) / 1e6


async def multirange_rate(
    url: str, size: int, seconds: float, n_ranges: int = 1024, part_bytes: int = 1000, concurrency: int = 4
) -> tuple[float, float]:
    step = size // n_ranges
    header = "bytes=" + ",".join(f"{i * step}-{i * step + part_bytes - 1}" for i in range(n_ranges))
    done = 0
    nbytes = 0
    deadline = time.monotonic() + seconds

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal done, nbytes
        while time.monotonic() < deadline:
            async with s.get(url, headers={"Range": header}) as r:
                assert r.status == 206, r.status
                nbytes += len(await r.read())
            done += 1

    t0 = time.monotonic()
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        await asyncio.gather(*[worker(s) for _ in range(concurrency)])
    elapsed = time.monotonic() - t0
    return done / elapsed, nbytes / elapsed / 1e6


async def concurrent_clients(
    url: str, size: int, clients: int, gets_per_client: int, range_bytes: int
) -> tuple[float, float, float]:
    """Each client GETs `range_bytes` (a single range at a client-specific offset) repeatedly."""
    lat: list[float] = []
    total = 0
    conn = aiohttp.TCPConnector(limit=clients)

    async def client(i: int, s: aiohttp.ClientSession) -> None:
        nonlocal total
        for j in range(gets_per_client):
            start = ((i * gets_per_client + j) * range_bytes) % (size - range_bytes)
            t0 = time.monotonic()
            async with s.get(url, headers={"Range": f"bytes={start}-{start + range_bytes - 1}"}) as r:
                n = 0
                async for chunk in r.content.iter_chunked(1 << 20):
                    n += len(chunk)
            lat.append(time.monotonic() - t0)
            total += n

    t0 = time.monotonic()
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as s:
        await asyncio.gather(*[client(i, s) for i in range(clients)])
    elapsed = time.monotonic() - t0
    lat.sort()
    return total / elapsed / 1e6, lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


async def timed_get(s: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    t0 = time.monotonic()
    async with s.get(url) as r:
        n = 0
        async for chunk in r.content.iter_chunked(1 << 20):
            n += len(chunk)
    return time.monotonic() - t0, n


async def ttfb(s: aiohttp.ClientSession, url: str) -> float:
    t0 = time.monotonic()
    async with s.get(url) as r:
        await r.read()
    return time.monotonic() - t0


async def ttfb_after_idle(s: aiohttp.ClientSession, url: str, idle_s: float) -> float:
    await asyncio.sleep(idle_s)
    return await ttfb(s, url)


# ---------------------------------------------------------------- main


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blob-mb", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    args = ap.parse_args()
    if shutil.which("docker-registry") is None or shutil.which("curl") is None:
        sys.exit("needs Debian's docker-registry and curl")
    secs = 2.0 if args.quick else 4.0
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as td:
        tmp = Path(td)
        size = args.blob_mb << 20
        blob = tmp / "blob"
        digest = make_blob(blob, size)
        ref = await start_reference(tmp)
        ours_proc, (ours_url,) = start_ours([{"root": str(tmp / "ours-root")}])
        servers = {"docker-registry": ref.url, "registry_mock": ours_url}
        try:
            for url in servers.values():
                await push_file(url, "bench/blob", blob, digest)
            print(
                f"blob: {args.blob_mb} MiB random, {digest[:19]}…; loopback; client: curl/aiohttp\n"
            )

            print("== unshaped full-blob GET (curl, best of 3) ==")
            full = {}
            for name, url in servers.items():
                full[name] = max(curl_full_get(f"{url}/v2/bench/blob/blobs/{digest}") for _ in range(3))
                print(f"  {name:16s} {full[name]:9.1f} MB/s")
            ratio = full["registry_mock"] / full["docker-registry"]
            print(f"  ratio ours/reference: {ratio:.2f} (goal >= 0.5)\n")

            print("== 1024-range multipart GET (1000-byte parts spread over the blob, 4 clients) ==")
            mr = {}
            for name, url in servers.items():
                rate, mbs = await multirange_rate(f"{url}/v2/bench/blob/blobs/{digest}", size, secs)
                mr[name] = rate
                print(f"  {name:16s} {rate:9.1f} req/s  ({mbs:.1f} MB/s of multipart body)")
            print(f"  ratio ours/reference: {mr['registry_mock'] / mr['docker-registry']:.2f}  (goal >= 1)\n")

            print("== 100 concurrent clients, 4 x 1 MiB single-range GETs each ==")
            conc = {}
            for name, url in servers.items():
                agg, p50, p99 = await concurrent_clients(
                    f"{url}/v2/bench/blob/blobs/{digest}", size, 100, 4, 1 << 20
                )
                conc[name] = agg
                print(
                    f"  {name:16s} {agg:9.1f} MB/s total  p50 {p50 * 1e3:7.1f} ms  p99 {p99 * 1e3:7.1f} ms"
                )
            print(f"  ratio ours/reference: {conc['registry_mock'] / conc['docker-registry']:.2f}\n")
        finally:
            ref.stop()
            ours_proc.terminate()
            ours_proc.wait()

        # ------------------------------------------------------------ shaping accuracy
        rates_mbit = [1, 10, 100, 1000]
        lats_ms = [1, 20, 100]
        dur = 1.5 if args.quick else 2.5
        configs: list[dict[str, object]] = [{"link": {}}]
        configs += [{"link": {"bandwidth_bytes_per_s": r * MBIT}} for r in rates_mbit]
        configs += [{"link": {"latency_s": ms / 1000}} for ms in lats_ms]
        for c in configs:
            c["root"] = str(tmp / "ours-root")
        proc, urls = start_ours(configs)
        try:
            print("== shaping accuracy: per-connection bandwidth (one transfer, client-measured) ==")
            print(f"  {'configured':>12} {'achieved':>12} {'error':>8}")
            small = tmp / "small"
            for r_mbit, url in zip(rates_mbit, urls[1:5], strict=True):
                nbytes = int(r_mbit * MBIT * dur)
                async with aiohttp.ClientSession(auto_decompress=False) as s:
                    hdr = {"Range": f"bytes=0-{nbytes - 1}"}
                    t0 = time.monotonic()
                    async with s.get(f"{url}/v2/bench/blob/blobs/{digest}", headers=hdr) as resp:
                        got = 0
                        async for chunk in resp.content.iter_chunked(1 << 20):
                            got += len(chunk)
                    el = time.monotonic() - t0
                achieved = got / el / MBIT
                print(
                    f"  {r_mbit:>8} Mbit {achieved:>8.2f} Mbit {100 * (achieved - r_mbit) / r_mbit:>+7.2f}%"
                )
            del small
            print("\n== shaping accuracy: added latency (GET /v2/, medians of 20) ==")
            print("  'vs warm': minus back-to-back unshaped requests; 'vs idle-matched': minus unshaped")
            print("  requests each sent after the same idle time (this host answers slower after idling,")
            print("  shaped or not; the link's own contribution is the difference to that)")
            async with aiohttp.ClientSession() as s:
                base = statistics.median([await ttfb(s, f"{urls[0]}/v2/") for _ in range(20)])
                print(f"  unshaped, back-to-back: median {base * 1e3:.3f} ms")
                print(f"  {'configured':>12} {'idle-matched base':>18} {'vs warm':>10}"
                      f" {'vs idle-matched':>16}")
                for ms, url in zip(lats_ms, urls[5:], strict=True):
                    shaped = statistics.median([await ttfb(s, f"{url}/v2/") for _ in range(20)])
                    idle_base = statistics.median([await ttfb_after_idle(s, f"{urls[0]}/v2/", ms / 1000)
                                                   for _ in range(20)])
                    print(f"  {ms:>9} ms {idle_base * 1e3:>15.3f} ms {(shaped - base) * 1e3 - ms:>+7.3f} ms"
                          f" {(shaped - idle_base) * 1e3 - ms:>+13.3f} ms")
        finally:
            proc.terminate()
            proc.wait()
    print(f"\n(total wall time {time.monotonic() - t_start:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
