"""Recording real startup traces, reproducibly, and describing them against their image.

`record_trace(spec)` does what a node would: build the recipe's image (cached, `realimages`),
serve it from registry_mock in this process on 127.0.0.1, mount it lazily through FUSE with trace
recording (`python -m emulator.fuse REF MOUNTPOINT --record TRACE`, the same code as
`lazylab lazy mount --record`), run the command as root with `chroot MOUNTPOINT ARGV`, unmount,
and return the recorded `Trace` (paths relative and normalized, as in the TOC). The mount keeps
no file pages across opens, so the trace holds every read the program's opens cause.

`trace_stats(trace, tocs)` says how much of the image a trace touches: distinct bytes read over the
image's file bytes (Slacker's "6.4% of the data read"), and the compressed bytes of the TOC chunks
those reads need over the layer size (what a lazy pull fetches on demand).

    python -m experiments.record_traces [NAME...] [--out DIR] [--format F]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from experiments.realimages import image_record, load_tocs
from experiments.realimages_trees import ImageRecipeError
from imageformat.byterange import ByteRange, merge_ranges
from imageformat.toc import EntryType, LayerFormat, Toc, TocEntry
from registry_mock.app import running_registry
from registry_mock.importer import import_oci_layout
from registry_mock.storage import MemoryStorage
from startup.trace import Op, Trace

TRACES_DIR = Path(__file__).resolve().parent / "traces"
REPO_ROOT = Path(__file__).resolve().parents[1]


BLOCK_BYTES = 50_000  # stargz-store's fetch unit (its default blob block size)


class RecordError(ImageRecipeError):
    """Recording a trace failed (mount did not come up, the command failed, FUSE missing)."""


@dataclass(frozen=True, kw_only=True)
class TraceSpec:
    name: str  # file stem under experiments/traces/
    image: str  # realimages recipe
    argv: tuple[str, ...]  # run as `chroot MOUNTPOINT *argv`
    description: str
    expect_stdout: str = ""  # a substring the command's output must contain
    stdin: str = ""  # fed to the command


DEBIAN_LARGE_FILE = "usr/lib/gcc/x86_64-linux-gnu/12/cc1"

TRACE_SPECS: dict[str, TraceSpec] = {
    s.name: s
    for s in (
        TraceSpec(
            name="python_import_json_ssl",
            image="python",
            argv=("/usr/bin/python3", "-c", "import json, ssl; print(json.dumps(ssl.OPENSSL_VERSION))"),
            description="python3 -c 'import json, ssl' (interpreter start, two imports)",
            expect_stdout="OpenSSL",
        ),
        TraceSpec(
            name="python_version",
            image="python",
            argv=("/usr/bin/python3", "-c", "pass"),
            description="python3 -c pass (bare interpreter start)",
        ),
        TraceSpec(
            name="busybox_shell_script",
            image="busybox",
            argv=("/app/start.sh",),
            description="/app/start.sh: sources a config, cat/grep/wc/sha256sum/head/find, echo ready",
            expect_stdout="ready",
        ),
        TraceSpec(
            name="debian_read_large_file",
            image="debian",
            argv=("/usr/bin/sha256sum", "/" + DEBIAN_LARGE_FILE),
            description=f"sha256sum /{DEBIAN_LARGE_FILE} (reads one large file end to end)",
            expect_stdout="cc1",
        ),
        TraceSpec(
            name="debian_gcc_compile",
            image="debian",
            argv=("/usr/bin/gcc", "-O2", "-pipe", "-S", "-x", "c", "-o", "-", "-"),
            stdin='#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n',
            description="gcc -O2 -S of a hello world read from stdin (driver, cc1, headers)",
            expect_stdout="main",
        ),
        TraceSpec(
            name="debian_python_import_json_ssl",
            image="debian",
            argv=("/usr/bin/python3", "-c", "import json, ssl"),
            description="python3 -c 'import json, ssl' in the large Debian image",
        ),
    )
}


def trace_spec(name: str) -> TraceSpec:
    try:
        return TRACE_SPECS[name]
    except KeyError:
        raise RecordError(f"unknown trace {name!r} (choose one of: {', '.join(TRACE_SPECS)})") from None


def shipped_trace_path(name: str) -> Path:
    return TRACES_DIR / f"{name}.jsonl"


def load_shipped_trace(name: str) -> Trace:
    return Trace.load(shipped_trace_path(name))


def prefetch_paths(trace: Trace) -> list[str]:
    """Files the trace reads, in first-read order: the list for a prioritized (prefetch) image."""
    return list(dict.fromkeys(o.path for o in trace if o.op is Op.READ and o.length > 0))


class _Mount:
    """`python -m emulator.fuse REF MOUNTPOINT --record TRACE` as a child process."""

    def __init__(self, ref: str, mountpoint: Path, trace: Path, name: str, timeout_s: float) -> None:
        env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
        self.mountpoint = mountpoint
        # stderr to a file: a chatty mount must never block on a full pipe nobody reads
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emulator.fuse",
                ref,
                str(mountpoint),
                "--record",
                str(trace),
                "--trace-name",
                name,
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=REPO_ROOT,
            env=env,
        )
        first: list[str] = []
        reader = threading.Thread(
            target=lambda: first.append(
                self.proc.stdout.readline()  # type: ignore[union-attr]
            ),
            daemon=True,
        )
        reader.start()
        reader.join(timeout_s)
        if not first or not first[0].startswith("mounted"):
            self.proc.kill()
            self.proc.communicate(timeout=30)
            raise RecordError(f"lazy mount of {ref} did not come up: {(first or [''])[0]!r} {self._err()}")

    def _err(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().strip()[-800:]

    def unmount(self, timeout_s: float = 60) -> None:
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-u", str(self.mountpoint)], capture_output=True, check=False)
        try:
            self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise RecordError("the lazy mount did not exit after unmounting") from None
        finally:
            err = self._err()
            self._stderr.close()
        if self.proc.returncode != 0:
            raise RecordError(f"the lazy mount exited with {self.proc.returncode}: {err}")


def _run_in(chroot: str, root: Path, spec: TraceSpec, timeout_s: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [chroot, str(root), *spec.argv],
            capture_output=True,
            input=spec.stdin,
            text=True,
            timeout=timeout_s,
            check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
        )
    except subprocess.TimeoutExpired:
        raise RecordError(f"{' '.join(spec.argv)} ran longer than {timeout_s:.0f} s in the mount") from None


def record_trace(
    spec: TraceSpec, *, fmt: LayerFormat | str = LayerFormat.ZSTD_CHUNKED, timeout_s: float = 300
) -> Trace:
    """Record `spec` through a real lazy FUSE mount (root, /dev/fuse and fusermount3 needed)."""
    if os.geteuid() != 0:
        raise RecordError("recording runs `chroot`, which needs root")
    chroot = shutil.which("chroot") or shutil.which("chroot", path="/usr/sbin:/sbin")
    if chroot is None:
        raise RecordError("chroot (coreutils) is not installed")
    built = image_record(spec.image, fmt)
    storage = MemoryStorage()
    repo = f"lab/{spec.image}"
    import_oci_layout(built.path, repo, built.tag, storage)
    with running_registry(storage=storage) as reg, tempfile.TemporaryDirectory(prefix="lazylab-rec-") as tmp:
        mnt, trace_file = Path(tmp) / "root", Path(tmp) / "trace.jsonl"
        mnt.mkdir()
        mount = _Mount(f"{reg.address}/{repo}:{built.tag}", mnt, trace_file, spec.name, timeout_s)
        try:
            r = _run_in(chroot, mnt, spec, timeout_s)
        finally:
            mount.unmount()
        if r.returncode != 0:
            raise RecordError(
                f"{' '.join(spec.argv)} failed in the mount ({r.returncode}): {r.stderr[-800:]}"
            )
        if spec.expect_stdout not in r.stdout:
            raise RecordError(
                f"{' '.join(spec.argv)}: output lacks {spec.expect_stdout!r}: {r.stdout[-400:]}"
            )
        recorded = Trace.load(trace_file)
    return Trace.of(recorded.ops, name=spec.name, image=spec.image)


# -- describing a trace against its image -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TraceStats:
    ops: int
    reads: int
    bytes_read: int  # every read, re-reads included
    unique_bytes_read: int  # union of the byte ranges read, per file
    files_read: int  # distinct regular files read
    paths_touched: int  # distinct paths in the trace
    image_files: int
    image_file_bytes: int
    chunk_bytes: int  # compressed bytes of the TOC chunks the reads need
    block_bytes: int  # ... rounded out to stargz-store's 50,000-byte blob blocks
    blob_bytes: int  # compressed layer bytes
    think_s: float

    @property
    def fraction_read(self) -> float:
        return self.unique_bytes_read / self.image_file_bytes if self.image_file_bytes else 0.0

    @property
    def fraction_fetched(self) -> float:
        return self.chunk_bytes / self.blob_bytes if self.blob_bytes else 0.0


def _resolve(tocs: list[Toc], path: str) -> tuple[int, TocEntry] | None:
    """(layer index, regular-file entry) for `path`, topmost layer first, hardlinks followed."""
    for i in range(len(tocs) - 1, -1, -1):
        entry = tocs[i].by_path.get(path)
        if entry is None:
            continue
        if entry.type is EntryType.HARDLINK:
            target = tocs[i].by_path.get(entry.link_name.lstrip("/"))
            return (i, target) if target is not None and target.is_reg else None
        return (i, entry) if entry.is_reg else None
    return None


def missing_paths(trace: Trace, tocs: list[Toc]) -> list[str]:
    """Paths of the trace that no layer's TOC holds (the root "." always exists)."""
    known = set().union(*(set(t.by_path) | set(t.children) for t in tocs)) if tocs else set()
    return sorted({o.path for o in trace if o.path != "." and o.path not in known})


def trace_stats(trace: Trace, tocs: list[Toc]) -> TraceStats:
    """How much of the image (all layers' TOCs) `trace` reads and would make a lazy pull fetch."""
    per_file: dict[tuple[int, str], list[ByteRange]] = {}
    entries: dict[tuple[int, str], TocEntry] = {}
    for o in trace:
        if o.op is not Op.READ or o.length == 0:
            continue
        found = _resolve(tocs, o.path)
        if found is None:
            continue
        layer, entry = found
        key = (layer, entry.path)
        entries[key] = entry
        per_file.setdefault(key, []).append(ByteRange(o.offset, o.offset + o.length))
    unique = 0
    compressed: dict[int, set[ByteRange]] = {}
    for key, ranges in per_file.items():
        merged = merge_ranges(ranges)
        unique += sum(r.length for r in merged)
        compressed.setdefault(key[0], set()).update(
            c.compressed for r in merged for c in entries[key].chunks_for(r)
        )
    chunk_bytes = block_bytes = 0
    for layer, spans in compressed.items():
        merged = merge_ranges(spans)
        chunk_bytes += sum(r.length for r in merged)
        blocks = {b for r in merged for b in range(r.start // BLOCK_BYTES, (r.stop - 1) // BLOCK_BYTES + 1)}
        size = tocs[layer].blob_size or 0
        block_bytes += sum(min(BLOCK_BYTES, size - b * BLOCK_BYTES) if size else BLOCK_BYTES for b in blocks)
    return TraceStats(
        ops=len(trace),
        reads=sum(1 for o in trace if o.op is Op.READ),
        bytes_read=trace.bytes_read,
        unique_bytes_read=unique,
        files_read=len(per_file),
        paths_touched=len(trace.paths()),
        image_files=sum(1 for t in tocs for _ in t.regular_files()),
        image_file_bytes=sum(t.file_bytes for t in tocs),
        chunk_bytes=chunk_bytes,
        block_bytes=block_bytes,
        blob_bytes=sum(t.blob_size or 0 for t in tocs),
        think_s=trace.think_s,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.record_traces",
        description="record the shipped startup traces through a lazy FUSE mount",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"traces (default: all): {', '.join(TRACE_SPECS)}"
    )
    parser.add_argument("--out", type=Path, default=TRACES_DIR, help="directory for NAME.jsonl")
    parser.add_argument("--format", default=LayerFormat.ZSTD_CHUNKED.value, help="layer format of the image")
    parser.add_argument(
        "--stats-only", action="store_true", help="describe the traces in --out, record nothing"
    )
    parser.add_argument("--markdown", action="store_true", help="finish with a Markdown table of the traces")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, TraceStats, int]] = []
    try:
        for name in args.names or list(TRACE_SPECS):
            spec = trace_spec(name)
            path = args.out / f"{name}.jsonl"
            if not args.stats_only:
                trace = record_trace(spec, fmt=args.format)
                args.out.mkdir(parents=True, exist_ok=True)
                trace.save(path)
            trace = Trace.load(path)
            built = image_record(spec.image, args.format)
            st = trace_stats(trace, load_tocs(built.path, built.tag))
            print(
                f"{name}: {st.ops} ops, {st.reads} reads, {st.bytes_read} B read "
                f"({st.unique_bytes_read} distinct) in {st.files_read} files; "
                f"{100 * st.fraction_read:.2f}% of {st.image_file_bytes} file bytes, "
                f"{100 * st.fraction_fetched:.2f}% of the {st.blob_bytes} B layer -> {path}",
                flush=True,
            )
            rows.append((name, spec.image, st, path.stat().st_size))
    except ImageRecipeError as e:
        print(f"lazylab: error: {e}", file=sys.stderr)
        return 2
    if args.markdown:
        print(markdown_table(rows))
    return 0


def markdown_table(rows: list[tuple[str, str, TraceStats, int]]) -> str:
    """The docs/images.md table: one row per trace (name, image, stats, trace file bytes)."""
    out = [
        "| trace | image | ops | reads | MB read | MB distinct | files read | % of file bytes read "
        "| % of layer fetched (chunks) | (50 kB blocks) | think s | trace KB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, image, st, size in rows:
        out.append(
            f"| {name} | {image} | {st.ops} | {st.reads} | {st.bytes_read / 1e6:.2f} | "
            f"{st.unique_bytes_read / 1e6:.2f} | {st.files_read} | {100 * st.fraction_read:.2f} | "
            f"{100 * st.fraction_fetched:.2f} | {100 * st.block_bytes / max(1, st.blob_bytes):.2f} | "
            f"{st.think_s:.3f} | {size / 1e3:.1f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
