"""Prometheus text exposition (format 0.0.4) written by hand: requests by endpoint and status, bytes
served, ranges per request (histogram), active transfers (gauge)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

RANGE_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, v: float) -> None:
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1
        self.total += 1
        self.sum += v

    def render(self, name: str) -> list[str]:
        lines = [f'{name}_bucket{{le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts, strict=True)]
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.total}')
        lines += [f"{name}_sum {self.sum}", f"{name}_count {self.total}"]
        return lines


class Metrics:
    def __init__(self, active_transfers: Callable[[], int] = lambda: 0) -> None:
        self.active_transfers = active_transfers
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.bytes_served: Counter[str] = Counter()
        self.ranges = _Histogram(RANGE_BUCKETS)
        self.duration = _Histogram(DURATION_BUCKETS)
        self.faults: Counter[str] = Counter()

    def observe(self, *, endpoint: str, method: str, status: int, bytes_sent: int, ranges: int,
                duration_s: float, faults: list[str]) -> None:
        self.requests[(endpoint, method, status)] += 1
        self.bytes_served[endpoint] += bytes_sent
        if endpoint in ("blob", "redirect_blob") and method == "GET":
            self.ranges.observe(ranges)
        self.duration.observe(duration_s)
        for f in faults:
            self.faults[f] += 1

    def render(self) -> str:
        out = ["# HELP registry_requests_total Requests by endpoint, method and status.",
               "# TYPE registry_requests_total counter"]
        for (ep, m, st), n in sorted(self.requests.items()):
            out.append(f'registry_requests_total{{endpoint="{_esc(ep)}",method="{m}",status="{st}"}} {n}')
        out += ["# HELP registry_bytes_served_total Response body bytes sent.",
                "# TYPE registry_bytes_served_total counter"]
        for ep, n in sorted(self.bytes_served.items()):
            out.append(f'registry_bytes_served_total{{endpoint="{_esc(ep)}"}} {n}')
        out += ["# HELP registry_ranges_per_request Ranges requested per blob GET (0: no Range).",
                "# TYPE registry_ranges_per_request histogram"]
        out += self.ranges.render("registry_ranges_per_request")
        out += ["# HELP registry_request_duration_seconds Request handling time.",
                "# TYPE registry_request_duration_seconds histogram"]
        out += self.duration.render("registry_request_duration_seconds")
        out += ["# HELP registry_active_transfers Response bodies being sent now.",
                "# TYPE registry_active_transfers gauge",
                f"registry_active_transfers {self.active_transfers()}"]
        out += ["# HELP registry_faults_injected_total Faults injected by kind.",
                "# TYPE registry_faults_injected_total counter"]
        for k, n in sorted(self.faults.items()):
            out.append(f'registry_faults_injected_total{{kind="{_esc(k)}"}} {n}')
        return "\n".join(out) + "\n"
