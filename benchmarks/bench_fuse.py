"""FUSE overhead: the same operations in-process (FileSystemView calls) and through a libfuse 3 mount.

Measures, on this machine, with a local-directory view (so the view itself costs ~a syscall and
the difference is FUSE: kernel round trips, libfuse, mfusepy/ctypes, the GIL):
  * stat: per-operation cost (attr/entry cache off, so every stat reaches the file system);
  * open+read+close of 4 KiB .. 1 MiB: a linear fit time = a + b * bytes gives the per-operation
    overhead (a) and the per-byte cost (b) for each path;
  * one synthetic startup trace (stat, open, sequential 128 KiB reads of many files) replayed
    both ways: total time and overhead per operation;
  * the same trace over the emulator's lazy store (image in registry_mock, zstd:chunked, caches
    warmed by one pass): in-process `LazyView` vs `lazylab lazy mount` (FUSE overhead on top of
    the lazy store's own per-read cost).
Run: .venv/bin/python benchmarks/bench_fuse.py [--quick]. Needs root, /dev/fuse and fuse3.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emulator.fuse.localview import DirectoryView  # noqa: E402
from startup.trace import Op, Trace, TraceOp  # noqa: E402

READ_SIZES = (4096, 65536, 131072, 524288, 1 << 20)


def make_tree(root: Path, n_big: int, n_small: int) -> None:
    rng = np.random.default_rng(np.random.SeedSequence(2024))
    (root / "big").mkdir(parents=True)
    (root / "small").mkdir()
    for i in range(n_big):
        (root / f"big/f{i:03d}").write_bytes(rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    for i in range(n_small):
        (root / f"small/s{i:04d}").write_bytes(rng.integers(0, 256, 100, dtype=np.uint8).tobytes())


def startup_trace(n_big: int, n_small: int) -> Trace:
    ops: list[TraceOp] = []
    for i in range(n_small):
        ops.append(TraceOp(op=Op.STAT, path=f"small/s{i:04d}"))
        ops.append(TraceOp(op=Op.READ, path=f"small/s{i:04d}", offset=0, length=100))
    for i in range(n_big):
        ops.append(TraceOp(op=Op.STAT, path=f"big/f{i:03d}"))
        for off in range(0, 1 << 20, 131072):
            ops.append(TraceOp(op=Op.READ, path=f"big/f{i:03d}", offset=off, length=131072))
    return Trace.of(ops, name="bench-startup")


def timeit(fn: Callable[[], object], reps: int) -> float:
    """Median seconds per call over `reps` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def fuse_read(mnt: Path, path: str, offset: int, length: int) -> bytes:
    fd = os.open(mnt / path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def replay_inprocess(view: DirectoryView, trace: Trace) -> float:
    t0 = time.perf_counter()
    for o in trace:
        if o.op is Op.STAT:
            view.stat(o.path)
        elif o.op is Op.READ:
            view.read(o.path, o.offset, o.length)
    return time.perf_counter() - t0


def replay_fuse(mnt: Path, trace: Trace) -> float:
    t0 = time.perf_counter()
    for o in trace:
        if o.op is Op.STAT:
            os.stat(mnt / o.path)
        elif o.op is Op.READ:
            fuse_read(mnt, o.path, o.offset, o.length)
    return time.perf_counter() - t0


def lazy_comparison(src: Path, tmp: Path, trace: Trace) -> tuple[float, float]:
    """(in-process, FUSE) seconds to replay `trace` over the lazy store, caches warm."""
    import shutil

    from emulator.lazyview import LazyOptions, open_lazy_view
    from imageformat.build import build_image
    from registry_mock.app import running_registry

    build_image(src, tmp / "oci", "v1", "zstd:chunked")
    mnt = tmp / "lazy-mnt"
    mnt.mkdir()
    with running_registry() as reg:
        ref = f"{reg.address}/bench/fuse:v1"
        skopeo = shutil.which("skopeo") or "skopeo"
        subprocess.run(
            [skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp / 'oci'}:v1", f"docker://{ref}"],
            check=True,
            capture_output=True,
            timeout=300,
        )
        with open_lazy_view(ref, LazyOptions()) as view:
            replay_inprocess(view, trace)  # type: ignore[arg-type]  # warm the cache
            t_in = min(replay_inprocess(view, trace) for _ in range(3))  # type: ignore[arg-type]
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator.fuse", ref, str(mnt), "--attr-timeout", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        try:
            if not (proc.stdout and proc.stdout.readline().startswith("mounted")):
                raise RuntimeError("lazy mount failed")
            replay_fuse(mnt, trace)  # warm
            t_fuse = min(replay_fuse(mnt, trace) for _ in range(3))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
    return t_in, t_fuse


def fit(sizes: tuple[int, ...], secs: list[float]) -> tuple[float, float]:
    """(intercept_s, slope_s_per_byte) of the least-squares line."""
    slope, intercept = np.polyfit(np.array(sizes, dtype=float), np.array(secs), 1)
    return float(intercept), float(slope)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    reps = 50 if args.quick else 300
    n_big, n_small = (8, 200) if args.quick else (32, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-fuse-") as tmp:
        src, mnt = Path(tmp) / "src", Path(tmp) / "mnt"
        mnt.mkdir()
        make_tree(src, n_big, n_small)
        view = DirectoryView(src)
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator.fuse", str(src), str(mnt), "--attr-timeout", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line.startswith("mounted"):
                print(f"mount failed: {line!r}")
                return 1
            small = "small/s0000"
            stat_in = timeit(lambda: view.stat(small), reps * 10)
            stat_fuse = timeit(lambda: os.stat(mnt / small), reps * 10)
            read_in = [timeit(lambda n=n: view.read("big/f000", 0, n), reps) for n in READ_SIZES]
            read_fuse = [timeit(lambda n=n: fuse_read(mnt, "big/f000", 0, n), reps) for n in READ_SIZES]
            trace = startup_trace(n_big, n_small)
            replay_inprocess(view, trace)  # warm the page cache of the source
            total_in = min(replay_inprocess(view, trace) for _ in range(3))
            total_fuse = min(replay_fuse(mnt, trace) for _ in range(3))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        lazy_in, lazy_fuse = lazy_comparison(src, Path(tmp), trace)
    a_in, b_in = fit(READ_SIZES, read_in)
    a_fuse, b_fuse = fit(READ_SIZES, read_fuse)
    print("FUSE overhead (local-directory view; medians; attr/entry cache off)")
    print(f"{'operation':<28}{'in-process':>14}{'FUSE':>14}{'overhead':>14}{'ratio':>8}")
    print(
        f"{'stat':<28}{stat_in * 1e6:>11.1f} us{stat_fuse * 1e6:>11.1f} us"
        f"{(stat_fuse - stat_in) * 1e6:>11.1f} us{stat_fuse / stat_in:>7.1f}x"
    )
    for n, ti, tf in zip(READ_SIZES, read_in, read_fuse, strict=True):
        print(
            f"{f'open+read {n // 1024} KiB+close':<28}{ti * 1e6:>11.1f} us{tf * 1e6:>11.1f} us"
            f"{(tf - ti) * 1e6:>11.1f} us{tf / ti:>7.1f}x"
        )
    print(
        f"linear fit of open+read+close: per-op {a_in * 1e6:.1f} us in-process vs {a_fuse * 1e6:.1f} us FUSE "
        f"(+{(a_fuse - a_in) * 1e6:.1f} us); per byte {b_in * 1e9:.3f} ns vs {b_fuse * 1e9:.3f} ns "
        f"(+{(b_fuse - b_in) * 1e9:.3f} ns/B = {1 / max(b_fuse, 1e-15) / 1e6:.0f} MB/s through FUSE)"
    )
    n_ops = len(trace)
    print(
        f"trace replay ({n_ops} ops, {trace.bytes_read / 1e6:.1f} MB): in-process {total_in * 1e3:.1f} ms, "
        f"FUSE {total_fuse * 1e3:.1f} ms, overhead {(total_fuse - total_in) / n_ops * 1e6:.1f} us/op, "
        f"ratio {total_fuse / total_in:.1f}x"
    )
    print(
        f"same trace over the lazy store (zstd:chunked, warm caches): in-process {lazy_in * 1e3:.1f} ms, "
        f"FUSE {lazy_fuse * 1e3:.1f} ms, overhead {(lazy_fuse - lazy_in) / n_ops * 1e6:.1f} us/op, "
        f"ratio {lazy_fuse / lazy_in:.1f}x"
    )
    print("per operation (trace replay, warm):")
    print(f"{'':<28}{'in-process':>14}{'FUSE':>14}")
    print(f"{'local directory':<28}{total_in / n_ops * 1e6:>11.1f} us{total_fuse / n_ops * 1e6:>11.1f} us")
    print(f"{'lazy store':<28}{lazy_in / n_ops * 1e6:>11.1f} us{lazy_fuse / n_ops * 1e6:>11.1f} us")
    print(
        f"lazy FUSE / local FUSE per op: {lazy_fuse / total_fuse:.2f}x "
        f"(+{(lazy_fuse - total_fuse) / n_ops * 1e6:.1f} us/op: the lazy view's own cost through FUSE)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
