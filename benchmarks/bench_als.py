"""podman 4.3.1 pulling through our Additional Layer Store vs a normal podman pull, on a shaped link.

For each lazy format: an image of incompressible files in registry_mock (127.0.0.1, link shaped
to --mbit per connection and --rtt-ms added per request), `lazylab store serve` as the ALS, and:
  * `podman pull` with the ALS: wall time and bytes the registry sent (manifest, config, TOCs);
  * `podman image mount` + reading one small file through overlay: time and bytes;
  * `podman pull` without the ALS (the reference): wall time and bytes.
Run: .venv/bin/python benchmarks/bench_als.py [--mbit 100] [--rtt-ms 5] [--size-mb 24].
Needs root, /dev/fuse, fuse3, podman and skopeo.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imageformat.build import build_image  # noqa: E402
from registry_mock.app import running_registry  # noqa: E402
from registry_mock.config import LinkSpec, RegistrySpec  # noqa: E402


def podman_env(root: Path, als: Path | None) -> dict[str, str]:
    (root / "graph").mkdir(parents=True)
    (root / "run").mkdir()
    text = f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
    if als is not None:
        text += f'[storage.options]\nadditionallayerstores = ["{als}:ref"]\n'
    (root / "storage.conf").write_text(text)
    return {**os.environ, "CONTAINERS_STORAGE_CONF": str(root / "storage.conf")}


def podman(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, check=True, timeout=600
    ).stdout


def run_format(fmt: str, tmp: Path, spec: RegistrySpec, size_mb: int) -> None:
    rng = np.random.default_rng(np.random.SeedSequence(99))
    src = tmp / "src"
    (src / "data").mkdir(parents=True)
    (src / "etc").mkdir()
    (src / "etc/config").write_bytes(b"answer=42\n")
    for i in range(size_mb):
        (src / f"data/blob{i:03d}").write_bytes(rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    built = build_image(src, tmp / "oci", "v1", fmt)
    store = tmp / "store"
    store.mkdir()
    serve = subprocess.Popen(
        [sys.executable, "-m", "lazylab.cli", "store", "serve", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    envs: list[dict[str, str]] = []
    try:
        assert serve.stdout is not None and serve.stdout.readline().startswith("serving")
        with running_registry(spec) as reg:
            ref = f"{reg.address}/bench/als:v1"
            subprocess.run(
                ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{tmp / 'oci'}:v1", f"docker://{ref}"],
                check=True,
                capture_output=True,
                timeout=600,
            )
            lazy = podman_env(tmp / "lazy", store)
            envs.append(lazy)
            mark = len(reg.records)
            t0 = time.perf_counter()
            podman(lazy, "pull", "-q", "--tls-verify=false", ref)
            lazy_s = time.perf_counter() - t0
            lazy_b = sum(r["bytes_sent"] for r in reg.records[mark:])
            t0 = time.perf_counter()
            mnt = Path(podman(lazy, "image", "mount", ref).strip())
            mark = len(reg.records)
            t1 = time.perf_counter()
            assert (mnt / "etc/config").read_bytes() == b"answer=42\n"
            read_s = time.perf_counter() - t1
            read_b = sum(r["bytes_sent"] for r in reg.records[mark:])
            mount_s = t1 - t0
            podman(lazy, "image", "unmount", ref)
            full = podman_env(tmp / "full", None)
            envs.append(full)
            mark = len(reg.records)
            t0 = time.perf_counter()
            podman(full, "pull", "-q", "--tls-verify=false", ref)
            full_s = time.perf_counter() - t0
            full_b = sum(r["bytes_sent"] for r in reg.records[mark:])
    finally:
        for env in envs:
            subprocess.run(["podman", "rmi", "-a", "-f"], env=env, capture_output=True, check=False)
        subprocess.run(["fusermount3", "-u", str(store)], check=False)
        serve.communicate(timeout=60)
    layer = built.layers[0]
    print(
        f"{fmt:<20} blob {layer.size / 1e6:6.1f} MB | ALS pull {lazy_s:6.2f} s {lazy_b / 1e3:8.1f} kB | "
        f"normal pull {full_s:6.2f} s {full_b / 1e6:6.1f} MB | speed-up {full_s / lazy_s:5.1f}x, "
        f"bytes {full_b / max(lazy_b, 1):6.0f}x fewer | image mount {mount_s:5.2f} s, "
        f"first small read {read_s * 1e3:6.1f} ms {read_b} B"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mbit", type=float, default=100.0, help="per-connection bandwidth, Mbit/s")
    p.add_argument("--rtt-ms", type=float, default=5.0, help="latency added to every request")
    p.add_argument("--size-mb", type=int, default=24, help="image payload (incompressible), MiB")
    args = p.parse_args()
    spec = RegistrySpec(link=LinkSpec(bandwidth_bytes_per_s=args.mbit * 1e6 / 8, latency_s=args.rtt_ms / 1e3))
    print(
        f"link {args.mbit:g} Mbit/s per connection, +{args.rtt_ms:g} ms per request; "
        f"payload {args.size_mb} MiB"
    )
    for fmt in ("estargz", "zstd:chunked-legacy"):
        with tempfile.TemporaryDirectory(prefix="bench-als-") as tmp:
            run_format(fmt, Path(tmp), spec, args.size_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
