"""Emulated nodes in processes of their own, so that they compete for the host's cores as separate
machines do, and not for one interpreter's lock.

In one process, 8 nodes full-pulling the python image (18 MB, 1195 files) over a shared 1 Gbit/s
took 5.1 s where one node takes 0.39 s: the extraction threads and the event loop that receives
the bytes serialise on the GIL, and the loop waits up to the 5 ms switch interval for it each
time. Each node process is forked from a forkserver that has the emulator imported, reports
ready, then gets the common time origin (a `time.perf_counter()` value: CLOCK_MONOTONIC,
shared by every process on Linux) and sends its records back when its pods are done, with the
CPU time they took (`ClusterResult.node_cpu_s`: the testbed's per-node CPU). Before it
reports ready it warms up (`_warm_up`), as a long-running node daemon is warm.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import multiprocessing.connection
import shutil
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emulator.cluster import ClusterResult, LoopFactory, node_name, run_nodes
from emulator.errors import EmulatorError
from emulator.extract import RootWriter, extract_layer_stream
from emulator.reference import ImageReference
from imageformat.detect import encode_layer, read_layer_toc
from imageformat.toc import Compression, LayerFormat
from startup.record import StartupRecord
from startup.scenario import Scenario
from startup.trace import Trace

PRELOAD = ["emulator.cluster", "imageformat.zstdchunked_toc", "imageformat.estargz_toc"]  # imported lazily
START_MARGIN_S = 0.05  # the origin is this far after every node reported ready


async def run_node_processes(
    scenario: Scenario,
    refs: Mapping[str, ImageReference],
    traces: Mapping[str, Trace],
    work_dir: Path,
    *,
    disk_cache: bool = True,
    loop_factory: LoopFactory | None = None,
) -> ClusterResult:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    loop = asyncio.get_running_loop()
    conns: list[multiprocessing.connection.Connection] = []
    procs = []
    try:
        for i in range(scenario.cluster.nodes):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_node_main, name=f"emulated-node-{i:03d}", daemon=True,
                               args=(theirs, scenario, dict(refs), dict(traces), work_dir, i, disk_cache,
                                     loop_factory))
            proc.start()
            theirs.close()
            conns.append(ours)
            procs.append(proc)
        for i, conn in enumerate(conns):
            _expect(await loop.run_in_executor(None, _recv, conn), "ready", i)
        origin = time.perf_counter() + START_MARGIN_S
        origin_epoch = time.time() + START_MARGIN_S
        for conn in conns:
            conn.send(origin)
        records: list[StartupRecord] = []
        cpu: dict[str, float] = {}
        for i, conn in enumerate(conns):
            got, cpu[node_name(i)] = _expect(await loop.run_in_executor(None, _recv, conn), "records", i)
            records += got
        wall = time.perf_counter() - origin
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in conns:
            conn.close()
    records.sort(key=lambda r: r.ready_s if r.ready_s == r.ready_s else float("inf"))
    return ClusterResult(records, origin_epoch, wall, cpu)


def _recv(conn: multiprocessing.connection.Connection) -> Any:
    try:
        return conn.recv()
    except EOFError:
        return ("died", None)


def _expect(message: Any, kind: str, node: int) -> Any:
    what, payload = message
    if what == kind:
        return payload
    if what == "error":
        raise EmulatorError(f"emulated node {node}: {payload}")
    raise EmulatorError(f"emulated node {node}: its process exited without a result")


def _warm_up(scratch: Path) -> None:
    """Run the TOC parser and the extractor once on a tiny layer, so that a fresh process's
    first-use costs (lazy imports, compiled patterns; the python image's first TOC parse took
    142-200 ms instead of 45 ms) are paid before the origin, as a long-running node daemon has."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"warm-up\n" * 64
        ti = tarfile.TarInfo("etc/warm-up")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    dst = io.BytesIO()
    enc = encode_layer(LayerFormat.ZSTD_CHUNKED, io.BytesIO(buf.getvalue()), dst)
    blob = dst.getvalue()
    read_layer_toc(enc.media_type, enc.annotations, io.BytesIO(blob), len(blob))
    try:
        extract_layer_stream(io.BytesIO(blob), Compression.ZSTD, RootWriter(scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _node_main(conn: multiprocessing.connection.Connection, scenario: Scenario,
               refs: dict[str, ImageReference], traces: dict[str, Trace], work_dir: Path, node: int,
               disk_cache: bool, loop_factory: LoopFactory | None) -> None:
    try:
        _warm_up(work_dir / f"warm-up-{node:03d}")
        conn.send(("ready", None))
        origin = conn.recv()
        coro = run_nodes(scenario, refs, traces, work_dir, [node], origin, disk_cache=disk_cache)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            cpu0 = time.process_time()  # the pods' CPU: not the warm-up's, nor the wait for the origin
            records = runner.run(coro)
            cpu = time.process_time() - cpu0
        conn.send(("records", (records, cpu)))
    except BaseException as e:  # reported to the parent, which raises it
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()
