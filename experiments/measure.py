"""The measurement side of calibration: time the operations the simulator models, on this machine.

Every measurement is a real operation timed by the emulator's injected recorder or around the
library call the emulator makes:

- `range_get`: the emulator's `RangeFetcher` (emulator/ranges.py, timed into a `ListRecorder`)
  against `registry_mock` on a loopback port, its link shaped to a configured per-connection
  bandwidth and added latency (RTT); sizes log-uniform, 1..`max_ranges` ranges per request;
  the first requests of each link (connection set-up) are discarded;
- `decode`: zstd and gzip decompression of compressible data of varied sizes (the calls
  imageformat.layer makes);
- `extract`: layers extracted as a full pull does (emulator/extract.py), their decode subtracted;
- `read` via `fuse` / `inprocess`: the same (path, offset, length) reads through a FUSE mount of
  a directory (`python -m emulator.fuse DIR MOUNTPOINT`, open+pread+close) and through the
  in-process `DirectoryView`, both warm; skipped (and said so) when FUSE is unavailable;
- `toc_parse` and `verify`: zstd:chunked layers of compressible files (varied counts and sizes)
  encoded by imageformat; `toc_parse` times `read_layer_toc` (what emulator/tocfetch.py runs on
  the fetched bytes: footer, decompression, JSON, validation) against the blob bytes it reads;
  `verify` times what the lazy store does with every fetched unit (emulator/store.py
  `_decode_unit` + cache write): `decode_chunk`, sha256 against the unit digest, and `put` into
  a node cache (memory + disk, as the emulated nodes use) — batches of units, so the per-unit
  and the per-byte cost are both identifiable.

Results are `Measurement` rows (experiments/calibration.py). Measurements are serial on purpose:
concurrent ones would measure each other.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zstandard

from emulator.cache import make_node_cache
from emulator.client import RegistryClient
from emulator.extract import RootWriter, extract_layer_stream
from emulator.fuse.localview import DirectoryView
from emulator.ranges import RangeFetcher, RangePolicy
from emulator.recorder import ListRecorder
from emulator.reference import parse_reference
from emulator.units import Unit, units_for
from experiments.calibration import Measurement
from experiments.scratch import scratch_dir
from imageformat.byterange import ByteRange
from imageformat.detect import encode_layer, read_layer_toc
from imageformat.layer import decode_chunk
from imageformat.plain import DecompressedReader
from imageformat.toc import ChunkKind, Compression, EntryType, LayerFormat
from registry_mock import preciseloop
from registry_mock.app import running_registry
from registry_mock.config import LinkSpec, RegistrySpec
from registry_mock.storage import MemoryStorage

REPO = "calibration/blob"


@dataclass(frozen=True, kw_only=True)
class GetPlan:
    bandwidth_bytes_per_s: float
    rtt_s: float
    requests: int = 24
    warmup: int = 2
    min_bytes: int = 1024
    max_transfer_s: float = 1.0  # largest transfer ~ this long at the configured rate
    max_ranges: int = 8
    blob_bytes: int = 8 << 20


def compressible_bytes(rng: np.random.Generator, n: int) -> bytes:
    """Text-like bytes (compress ~3x with zstd), so decoders do realistic work."""
    words = [bytes(rng.integers(97, 123, size=int(k), dtype=np.uint8)) for k in rng.integers(2, 10, size=512)]
    picks = rng.integers(0, len(words), size=n // 4 + 1)
    return b" ".join(words[i] for i in picks)[:n]


def _ranges_for(rng: np.random.Generator, total: int, count: int, blob_bytes: int) -> list[ByteRange]:
    """`count` disjoint ranges adding up to ~`total` bytes, separated by gaps no merge bridges."""
    count = max(1, min(count, total // 64 or 1))
    each = max(1, total // count)
    span = count * (each + 4096)
    start = int(rng.integers(0, max(1, blob_bytes - span)))
    return [ByteRange(start + i * (each + 4096), start + i * (each + 4096) + each) for i in range(count)]


async def _gets(url_host: str, digest: str, plan: GetPlan, rng: np.random.Generator) -> list[Measurement]:
    recorder = ListRecorder()
    ref = parse_reference(f"{url_host}/{REPO}:latest")
    max_bytes = min(plan.blob_bytes // 2, int(plan.bandwidth_bytes_per_s * plan.max_transfer_s))
    async with RegistryClient(recorder=recorder) as client:
        fetcher = RangeFetcher(client, RangePolicy(merge_gap_bytes=0))
        for _ in range(plan.requests + plan.warmup):
            hi = max(plan.min_bytes + 1, max_bytes)
            size = int(np.exp(rng.uniform(np.log(plan.min_bytes), np.log(hi))))
            count = int(rng.integers(1, plan.max_ranges + 1))
            await fetcher.fetch(ref, digest, _ranges_for(rng, size, count, plan.blob_bytes))
    ops = recorder.of("range_get")[plan.warmup:]
    return [Measurement(op="range_get", duration_s=o.duration_s, nbytes=o.nbytes, count=o.count,
                        bandwidth_bytes_per_s=plan.bandwidth_bytes_per_s, rtt_s=plan.rtt_s) for o in ops]


def measure_gets(plans: Sequence[GetPlan], rng: np.random.Generator) -> list[Measurement]:
    """Range GETs over each shaped link (a fresh registry per link; blobs in memory)."""
    out: list[Measurement] = []
    for plan in plans:
        storage = MemoryStorage()
        digest = storage.put_blob_bytes(bytes(rng.integers(0, 256, size=plan.blob_bytes, dtype=np.uint8)))
        storage.link_blob(REPO, digest)
        link = LinkSpec(bandwidth_bytes_per_s=plan.bandwidth_bytes_per_s, latency_s=plan.rtt_s)
        with running_registry(RegistrySpec(link=link), storage=storage) as reg:
            out += preciseloop.run(_gets(reg.address, digest, plan, rng))
    return out


def measure_decode(rng: np.random.Generator, *, samples: int = 30,
                   max_bytes: int = 4 << 20) -> list[Measurement]:
    """zstd and gzip decompression of 4 KiB..max_bytes of compressible data."""
    out: list[Measurement] = []
    data = compressible_bytes(rng, max_bytes)
    zd = zstandard.ZstdDecompressor()
    for _ in range(samples):
        n = int(np.exp(rng.uniform(np.log(4096), np.log(max_bytes))))
        start = int(rng.integers(0, len(data) - n + 1))
        raw = data[start:start + n]
        z, g = zstandard.ZstdCompressor(level=3).compress(raw), gzip.compress(raw, compresslevel=6)
        t0 = time.perf_counter()
        got = zd.decompress(z, max_output_size=n)
        t1 = time.perf_counter()
        got_g = zlib.decompress(g, 16 + zlib.MAX_WBITS)
        t2 = time.perf_counter()
        if got != raw or got_g != raw:
            raise RuntimeError("decoder returned wrong bytes")
        out.append(Measurement(op="decode", codec="zstd", nbytes=n, duration_s=t1 - t0))
        out.append(Measurement(op="decode", codec="gzip", nbytes=n, duration_s=t2 - t1))
    return out


def measure_extract(rng: np.random.Generator, workdir: Path, *, batches: int = 20,
                    max_files: int = 400, max_batch_bytes: int = 32 << 20) -> list[Measurement]:
    """zstd:chunked layers extracted the way a full pull does it (emulator/extract.py
    `extract_layer_stream`: decompressing a frame per file, tar parsing, diff_id hash, RootWriter),
    minus a one-frame decode of the same tar (the simulator's decode term), so the per-frame
    overhead counts per entry. The layers are shaped like a distribution image's (`_tar_of`). Each
    picks a file size scale (100 B..8 MiB, log-uniform) and a file count (1..max_files, at most
    max_batch_bytes in all), so both the per-entry (`count`: directories, files, symlinks) and the
    per-byte cost are identifiable. (Timing RootWriter alone had fitted 0.10 ms per file; the
    python image's layer costs 0.2-0.3 ms per entry.)"""
    out: list[Measurement] = []
    payload = compressible_bytes(rng, 8 << 20)
    for b in range(batches):
        scale = float(np.exp(rng.uniform(np.log(100), np.log(8 << 20))))
        files = max(1, min(int(np.exp(rng.uniform(0, np.log(max_files)))), int(max_batch_bytes // scale)))
        sizes = np.clip(scale * np.exp(rng.normal(0.0, 0.3, size=files)), 1, len(payload)).astype(int)
        tar, entries = _tar_of(payload, sizes)
        dst = io.BytesIO()  # a frame per file and chunk, as in the lazy images a full pull reads too
        encode_layer(LayerFormat.ZSTD_CHUNKED_LEGACY, io.BytesIO(tar), dst)
        blob = dst.getvalue()
        one_frame = zstandard.ZstdCompressor(level=3).compress(tar)
        durations = []
        for rep in range(3):  # median of 3: file creation on a journalling fs has outliers
            root = workdir / f"extract-{b}-{rep}"
            t0 = time.perf_counter()
            _digest, written = extract_layer_stream(io.BytesIO(blob), Compression.ZSTD, RootWriter(root))
            t1 = time.perf_counter()
            DecompressedReader(Compression.ZSTD, io.BytesIO(one_frame)).drain()
            t2 = time.perf_counter()
            shutil.rmtree(root)
            if written != int(sizes.sum()):
                raise RuntimeError("extraction wrote the wrong number of bytes")
            durations.append((t1 - t0) - (t2 - t1))
        out.append(Measurement(op="extract", nbytes=written, count=entries,
                               duration_s=max(1e-6, float(np.median(durations)))))
    return out


def _tar_of(payload: bytes, sizes: np.ndarray) -> tuple[bytes, int]:
    """An uncompressed tar shaped like a distribution image's: files `payload[:size]` five
    directories deep (the extractor resolves every path component), a symlink beside every tenth
    file; returns (tar, entries)."""
    def where(i: int) -> str:
        return f"usr/lib/python3/d{i % 8}/s{i // 8 % 8}"

    dirs = {where(i) for i in range(len(sizes))}
    parents = sorted({p for d in dirs for p in _ancestors(d)})
    links = {i for i in range(0, len(sizes), 10)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in parents:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(ti)
        for i, size in enumerate(sizes):
            ti = tarfile.TarInfo(f"{where(i)}/f{i}.py")
            ti.size, ti.mode = int(size), 0o644
            tf.addfile(ti, io.BytesIO(payload[: int(size)]))
            if i in links:
                link = tarfile.TarInfo(f"{where(i)}/l{i}")
                link.type, link.linkname = tarfile.SYMTYPE, f"f{i}.py"
                tf.addfile(link)
    return buf.getvalue(), len(parents) + len(sizes) + len(links)


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: k + 1]) for k in range(len(parts))]


@contextmanager
def fuse_mount(source: Path, mountpoint: Path, timeout_s: float = 30.0) -> Iterator[Path]:
    """`python -m emulator.fuse SOURCE MOUNTPOINT` in a child; unmounted and reaped on exit."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "emulator.fuse", str(source), str(mountpoint)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("mounted"):
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"FUSE mount failed: {line.strip()} {err.strip()[-500:]}")
        yield mountpoint
    finally:
        if os.path.ismount(mountpoint):
            subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False, capture_output=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fuse_available() -> bool:
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def measure_reads(rng: np.random.Generator, workdir: Path, *, reads: int = 60,
                  max_bytes: int = 1 << 20) -> list[Measurement]:
    """The same reads through FUSE (open+pread+close at the mount) and in-process (DirectoryView)."""
    src = workdir / "fuse-src"
    src.mkdir(parents=True, exist_ok=True)
    payload = compressible_bytes(rng, max_bytes)
    nfiles = 16
    for i in range(nfiles):
        (src / f"f{i}").write_bytes(payload)
    view = DirectoryView(src)
    plan = []
    for _ in range(reads):
        n = int(np.exp(rng.uniform(np.log(1), np.log(max_bytes))))
        plan.append((f"f{int(rng.integers(0, nfiles))}", int(rng.integers(0, max_bytes - n + 1)), n))
    out: list[Measurement] = []
    with fuse_mount(src, workdir / "fuse-mnt") as mnt:
        for path, offset, n in plan[:4]:  # warm both paths (page cache, dentries, the daemon)
            view.read(path, offset, n)
            _read_file(mnt / path, offset, n)
        for path, offset, n in plan:
            t0 = time.perf_counter()
            a = view.read(path, offset, n)
            t1 = time.perf_counter()
            b = _read_file(mnt / path, offset, n)
            t2 = time.perf_counter()
            if a != b:
                raise RuntimeError(f"FUSE read of {path}@{offset}+{n} differs from the source")
            out.append(Measurement(op="read", via="inprocess", nbytes=n, duration_s=t1 - t0))
            out.append(Measurement(op="read", via="fuse", nbytes=n, duration_s=t2 - t1))
    return out


def _read_file(path: Path, offset: int, n: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, offset)
    finally:
        os.close(fd)


def _layer_tar(rng: np.random.Generator, payload: bytes, files: int, scale: float) -> bytes:
    """A tar of `files` regular files of ~`scale` bytes each (log-normal spread)."""
    import io
    import tarfile

    buf = io.BytesIO()
    sizes = np.clip(scale * np.exp(rng.normal(0.0, 0.5, size=files)), 1, len(payload)).astype(int)
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i, size in enumerate(sizes):
            off = int(rng.integers(0, len(payload) - int(size) + 1))
            info = tarfile.TarInfo(f"usr/lib/d{i % 32}/file-{i:05d}.py")
            info.size = int(size)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(payload[off:off + int(size)]))
    return buf.getvalue()


def measure_lazy(rng: np.random.Generator, workdir: Path, *, layers: int = 12, max_files: int = 2000,
                 batches_per_layer: int = 6, max_units: int = 64) -> list[Measurement]:
    """TOC parsing and per-unit verification (decode + sha256 + cache write) on encoded layers."""
    import io

    out: list[Measurement] = []
    payload = compressible_bytes(rng, 4 << 20)
    for li in range(layers):
        files = int(np.exp(rng.uniform(np.log(20), np.log(max_files))))
        scale = float(np.exp(rng.uniform(np.log(200), np.log(256 << 10))))
        scale = min(scale, (48 << 20) / files)  # at most ~48 MB per layer
        dst = io.BytesIO()
        enc = encode_layer(LayerFormat.ZSTD_CHUNKED, io.BytesIO(_layer_tar(rng, payload, files, scale)), dst)
        blob = dst.getvalue()
        read = [0]

        def fetch(r: ByteRange, blob: bytes = blob, read: list[int] = read) -> bytes:
            read[0] += r.length
            return blob[r.start:r.stop]

        t0 = time.perf_counter()
        toc = read_layer_toc(enc.media_type, enc.annotations, fetch, len(blob))
        duration = time.perf_counter() - t0
        if toc is None:
            raise RuntimeError("encoded zstd:chunked layer has no TOC")
        out.append(Measurement(op="toc_parse", nbytes=read[0], count=len(toc.entries), duration_s=duration))
        units: list[Unit] = [u for e in toc.entries if e.type is EntryType.REG
                             for u in units_for(li, enc.digest, e) if u.digest is not None]
        cache = make_node_cache(disk_dir=workdir / f"cache-{li}")
        for _ in range(batches_per_layer):
            k = max(1, min(len(units), int(np.exp(rng.uniform(0, np.log(max_units))))))
            start = int(rng.integers(0, len(units) - k + 1))
            batch = units[start:start + k]
            compressed = [[blob[c.compressed.start:c.compressed.stop] for c in u.chunks] for u in batch]
            nbytes = 0
            t0 = time.perf_counter()
            for u, datas in zip(batch, compressed, strict=True):
                content = b"".join(decode_chunk(toc.compression, b"" if c.kind is ChunkKind.ZEROS else d, c,
                                                verify=False) for c, d in zip(u.chunks, datas, strict=True))
                if "sha256:" + hashlib.sha256(content).hexdigest() != u.digest:
                    raise RuntimeError(f"unit {u.key} does not verify")
                cache.put(u.key, content)
                nbytes += len(content)
            cache.flush()  # the disk writes too: their writer thread spends the node's CPU all the same
            duration = time.perf_counter() - t0
            out.append(Measurement(op="verify", nbytes=nbytes, count=len(batch), duration_s=duration))
        shutil.rmtree(workdir / f"cache-{li}", ignore_errors=True)
    return out


def measure_all(config: dict, seed: int) -> tuple[list[Measurement], list[str]]:  # type: ignore[type-arg]
    """Every group the config asks for; returns the rows and notes on what was skipped."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    notes: list[str] = []
    links = config.get("links", {})
    plans = [GetPlan(bandwidth_bytes_per_s=float(bw), rtt_s=float(rtt),
                     requests=int(links.get("requests", 24)),
                     max_transfer_s=float(links.get("max_transfer_s", 1.0)),
                     max_ranges=int(links.get("max_ranges", 8)),
                     blob_bytes=int(links.get("blob_bytes", 8 << 20)))
             for bw in links.get("bandwidths_bytes_per_s", []) for rtt in links.get("rtts_s", [])]
    out = measure_gets(plans, rng)
    dec = config.get("decode", {})
    if dec.get("samples", 0):
        out += measure_decode(rng, samples=int(dec["samples"]), max_bytes=int(dec.get("max_bytes", 4 << 20)))
    with tempfile.TemporaryDirectory(prefix="lazylab-calibrate-", dir=scratch_dir()) as tmp:
        ext = config.get("extract", {})
        if ext.get("batches", 0):
            out += measure_extract(rng, Path(tmp), batches=int(ext["batches"]),
                                   max_files=int(ext.get("max_files", 400)))
        fz = config.get("fuse", {})
        if fz.get("reads", 0):
            if fuse_available():
                out += measure_reads(rng, Path(tmp), reads=int(fz["reads"]),
                                     max_bytes=int(fz.get("max_bytes", 1 << 20)))
            else:
                notes.append("FUSE unavailable (/dev/fuse or fusermount3 missing): FUSE costs keep defaults")
        lz = config.get("lazy", {})
        if lz.get("layers", 0):
            out += measure_lazy(rng, Path(tmp), layers=int(lz["layers"]),
                                max_files=int(lz.get("max_files", 2000)),
                                batches_per_layer=int(lz.get("batches_per_layer", 6)),
                                max_units=int(lz.get("max_units", 64)))
    return out, notes
