"""What a simulation run leaves behind: StartupRecords, the registry egress time series,
per-node CPU (FUSE and decode/extract), the run envelope, and an optional Prometheus export of
the pod-start latencies named after the kubelet SLIs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from startup.record import StartupRecord, write_csv

# kubelet's buckets for pod start durations (pkg/kubelet/metrics: podStartDurationBuckets order)
POD_START_BUCKETS_S = (
    0.5,
    1,
    2,
    3,
    4,
    5,
    6,
    8,
    10,
    20,
    30,
    45,
    60,
    120,
    180,
    240,
    300,
    360,
    480,
    600,
    900,
    1200,
    1800,
    2700,
    3600,
)
RUNTIME_OP_BUCKETS_S = (
    0.005,
    0.0125,
    0.03125,
    0.078125,
    0.1953125,
    0.48828125,
    1.220703125,
    3.0517578125,
    7.62939453125,
    19.073486328125,
    47.6837158203125,
    119.20928955078125,
    298.0232238769531,
    745.0580596923828,
)


class EgressSeries:
    """Bytes leaving one endpoint, accumulated into buckets of `sample_s` from piecewise-constant rates."""

    def __init__(self, name: str, sample_s: float) -> None:
        self.name = name
        self.sample_s = sample_s
        self.buckets: dict[int, float] = {}

    def add(self, t0: float, t1: float, rate: float) -> None:
        dt = self.sample_s
        b0, b1 = int(t0 // dt), int(t1 // dt)
        if b0 == b1:
            self.buckets[b0] = self.buckets.get(b0, 0.0) + rate * (t1 - t0)
            return
        self.buckets[b0] = self.buckets.get(b0, 0.0) + rate * ((b0 + 1) * dt - t0)
        for b in range(b0 + 1, b1):
            self.buckets[b] = self.buckets.get(b, 0.0) + rate * dt
        self.buckets[b1] = self.buckets.get(b1, 0.0) + rate * (t1 - b1 * dt)

    def rows(self) -> list[tuple[float, float]]:
        """(bucket start s, mean bytes/s over the bucket), every bucket up to the last non-empty one."""
        if not self.buckets:
            return []
        last = max(self.buckets)
        return [(b * self.sample_s, self.buckets.get(b, 0.0) / self.sample_s) for b in range(last + 1)]

    @property
    def peak_bytes_per_s(self) -> float:
        return max(self.buckets.values(), default=0.0) / self.sample_s


@dataclass(frozen=True, kw_only=True)
class NodeCpu:
    node: str
    fuse_cpu_s: float
    cpu_s: float  # decode + extract + lazy verify + TOC parse
    compute_s: float = 0.0  # all CPU the node spent (on a shared host, cluster.host_cores: every cost)


@dataclass(frozen=True, kw_only=True)
class RunResult:
    effective_config: dict[str, object]
    seed: int
    code_version: str
    calibration_digest: str
    error: str
    sim_time_s: float
    wall_s: float
    events: int = 0  # SimPy events scheduled
    loop_wall_s: float = 0.0  # wall time of the event loop alone (wall_s - this = build + collect)
    cohorts: int = 0  # simulated node groups (== nodes when cohorts are off)
    peak_egress_bytes_per_s: float = 0.0  # max over endpoints of the instantaneous egress
    bytes_from_registry: int = 0
    notes: tuple[str, ...] = ()


def write_records(records: Iterable[StartupRecord], path: Path) -> None:
    write_csv(records, path)
    try:
        import pyarrow  # noqa: F401  (optional; never a dependency)
    except ImportError:
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [asdict(r) | {"mode": r.mode.value} for r in records]
    if rows:
        pq.write_table(pa.Table.from_pylist(rows), path.with_suffix(".parquet"))


def write_egress(series: Sequence[EgressSeries], path: Path) -> None:
    with open(path, "w") as fh:
        fh.write("endpoint,t_s,bytes_per_s\n")
        for s in series:
            for t, rate in s.rows():
                fh.write(f"{s.name},{t!r},{rate!r}\n")


def write_node_cpu(rows: Iterable[NodeCpu], path: Path) -> None:
    with open(path, "w") as fh:
        fh.write("node,fuse_cpu_s,cpu_s,compute_s\n")
        for r in rows:
            fh.write(f"{r.node},{r.fuse_cpu_s!r},{r.cpu_s!r},{r.compute_s!r}\n")


def write_result(result: RunResult, path: Path) -> None:
    path.write_text(json.dumps(asdict(result), indent=2, sort_keys=True, default=str) + "\n")


def _histogram(
    name: str, help_text: str, values: Sequence[float], buckets: Sequence[float], labels: str = ""
) -> list[str]:
    finite = [v for v in values if not math.isnan(v)]
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    sep = "," if labels else ""
    for b in buckets:
        lines.append(f'{name}_bucket{{{labels}{sep}le="{b}"}} {sum(1 for v in finite if v <= b)}')
    lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {len(finite)}')
    lab = f"{{{labels}}}" if labels else ""
    lines.append(f"{name}_sum{lab} {sum(finite)!r}")
    lines.append(f"{name}_count{lab} {len(finite)}")
    return lines


def prometheus_text(records: Sequence[StartupRecord]) -> str:
    """Text exposition of the kubelet pod-start histograms (definitions: docs/metrics.md)."""
    ok = [r for r in records if r.ok]
    start = [r.created_s - r.submitted_s for r in ok]
    sli = [r.created_s - r.pulled_s for r in ok]
    lines = _histogram(
        "kubelet_pod_start_duration_seconds",
        "Pod creation to container started (simulated).",
        start,
        POD_START_BUCKETS_S,
    )
    lines += _histogram(
        "kubelet_pod_start_sli_duration_seconds",
        "Pod start excluding image pull time (simulated).",
        sli,
        POD_START_BUCKETS_S,
    )
    lines.append("# HELP kubelet_runtime_operations_duration_seconds Runtime operation latency (simulated).")
    lines.append("# TYPE kubelet_runtime_operations_duration_seconds histogram")
    for op, vals in (
        ("pull_image", [r.pulled_s - r.resolved_s for r in ok]),
        ("create_container", [r.created_s - r.pulled_s for r in ok]),
    ):
        lines += _histogram(
            "kubelet_runtime_operations_duration_seconds",
            "",
            vals,
            RUNTIME_OP_BUCKETS_S,
            f'operation_type="{op}"',
        )[2:]
    return "\n".join(lines) + "\n"
