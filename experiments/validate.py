"""`validate`: the same scenarios in both engines — is the simulator's prediction right?

Factors: engine (sim | emulator) x mode (full, partial, lazy, lazy-prefetch) x node link
(10 Mbit/s, 100 Mbit/s, 1 Gbit/s) x RTT (1 ms, 50 ms) x concurrency (1 or 8 emulated nodes
sharing one registry, one pod per node): 48 scenario points, 3 seeds each, 288 runs. The image is a real one
(`experiments.realimages`: Debian's python3.11 and its standard library, zstd:chunked, built on
demand and cached) and the workload its recorded trace (`experiments/traces/`,
`python3 -c 'import json, ssl'` recorded through the FUSE mount). `--quick`: busybox and its
shell-script trace, 2 modes x 1 link x 1 RTT x 1 node (CI).

Images and traces are named in the config by reference (`realimage:NAME:FORMAT`,
`trace:NAME`) and resolved by `run` on the machine that executes it, so run keys do not depend
on where the cache lives (the encoder's code version is part of every key: an encoder change
re-runs everything).

The testbed is modelled as it is: the emulator runs every node in a process of its own
(emulator/nodeprocs.py) and the registry in another, all on this host and on its tmpfs
(experiments/scratch.py), so the simulator's nodes, and the per-request work of client and
registry, share the host's cores (`cluster.host_cores` = os.cpu_count(), part of every run
key); the extraction, verify and TOC-parse CPU come from the calibration.

What both engines are asked to model, and what they are not: the parameters come from the
calibration file (`experiments/params/default.toml`), adapted per scenario by `for_scenario`:
no container create (the emulator runs no runtime), the goodput measured at the scenario's link
speed, the per-file extract cost folded into the extract rate.

The report (`tabulate`): per metric (pull, create, ready, bytes fetched) the error of the
prediction against the measurement (median and max |error|, share within 10% / 25%), the
error at every point, the mode ranking per scenario and whether it agrees, and where
lazy overtakes full along the link speed in each engine (crossovers).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from experiments.calibration import FittedParams
from experiments.compare import (
    METRICS,
    PointError,
    crossovers,
    error_summary,
    error_table,
    order_signs,
    point_errors,
    ranking_agreement,
    ranking_table,
)
from experiments.engines import engine_effective, run_engine
from experiments.framework import Calibration, Experiment, Plot, RunData, RunOutput, Table
from experiments.hostprobe import host_probe_s
from experiments.stats import mean_ci
from experiments.tables import estimate, group_runs

TRACES_DIR = Path(__file__).resolve().parent / "traces"
IMAGE_PREFIX = "realimage:"
TRACE_PREFIX = "trace:"

MODES = ["full", "partial", "lazy", "lazy-prefetch"]
LINKS_BYTES_PER_S = [1.25e6, 12.5e6, 125e6]  # 10 Mbit/s, 100 Mbit/s, 1 Gbit/s
RTTS_S = [0.001, 0.05]
NODES = [1, 8]
POINT = ("mode", "cluster.link_bandwidth_bytes_per_s", "cluster.rtt_s", "cluster.nodes")
SCENARIO_KEYS = POINT[1:]  # a scenario point without the mode (ranking)


def base_config(image: str, trace: str, host_cores: int | None = None) -> dict[str, Any]:
    """`host_cores` (default: this machine's CPU count) is the testbed model: the emulator runs
    every node (and the registry) on this host, so the simulator's nodes share its cores."""
    return {
        "name": "validate",
        "engine": "sim",
        "mode": "lazy",
        "cluster": {"nodes": 1, "link_bandwidth_bytes_per_s": 12.5e6, "rtt_s": 0.001, "cores": 2,
                    "host_cores": host_cores if host_cores is not None else (os.cpu_count() or 1)},
        # 8 nodes share one registry: its egress (1 Gbit/s) is the shared bottleneck at 1 Gbit/s links
        "registry": {"egress_bandwidth_bytes_per_s": 125e6},
        "images": [{"kind": "oci", "name": image, "layout": f"{IMAGE_PREFIX}{image}:zstd:chunked",
                    "tag": image}],
        "workload": {"kind": "trace", "path": f"{TRACE_PREFIX}{trace}"},
        "arrivals": {"kind": "per-node", "pods_per_node": 1},
    }


def resolve_references(config: dict[str, Any]) -> dict[str, Any]:
    """The config with `realimage:NAME:FORMAT` layouts built (or found in the cache) and
    `trace:NAME` paths pointing at experiments/traces/NAME.jsonl."""
    from experiments.realimages import prepare_image

    out = dict(config)
    images = []
    for img in config.get("images", []):
        layout = str(img.get("layout", ""))
        if layout.startswith(IMAGE_PREFIX):
            name, _, fmt = layout[len(IMAGE_PREFIX):].partition(":")
            img = {**img, "layout": str(prepare_image(name, fmt or "zstd:chunked"))}
        images.append(img)
    out["images"] = images
    workload = dict(config.get("workload", {}))
    path = str(workload.get("path", ""))
    if path.startswith(TRACE_PREFIX):
        workload["path"] = str(TRACES_DIR / f"{path[len(TRACE_PREFIX):]}.jsonl")
    out["workload"] = workload
    return out


def for_scenario(calibration: Calibration, config: dict[str, Any]) -> Calibration:
    """The calibration as the simulator should use it for this scenario point.

    - `create_s` = 0: the emulator runs no container runtime;
    - `bandwidth_efficiency`: the calibrated goodput at this link speed (the finer model's
      per-level efficiency, capped at 1) instead of the pooled one (0.96 pooled, 0.71 at 1 Gbit/s
      on the calibration machine);
    - `extract_bytes_per_s`: the calibrated per-entry extract cost (`model_extract_file_s`; the
      simulator has only a byte rate) folded into the byte rate for this image's entries and bytes.
    """
    params = calibration.params if isinstance(calibration.params, FittedParams) else FittedParams()
    changes: dict[str, Any] = {"create_s": 0.0}
    link = float(config.get("cluster", {}).get("link_bandwidth_bytes_per_s", 0) or 0)
    if link > 0 and params.model_bandwidth_levels_bytes_per_s:
        changes["bandwidth_efficiency"] = min(1.0, params.efficiency(link))
    stats = _image_stats(config)
    if stats is not None and params.model_extract_file_s > 0:
        entries, nbytes = stats
        extract_s = nbytes / params.extract_bytes_per_s + entries * params.model_extract_file_s
        changes["extract_bytes_per_s"] = nbytes / extract_s
    return dataclasses.replace(calibration, params=dataclasses.replace(params, **changes))


def _image_stats(config: dict[str, Any]) -> tuple[int, int] | None:
    """(tar entries, regular file bytes) of the config's one real image, None otherwise."""
    from experiments.realimages import image_record, load_tocs

    images = config.get("images", [])
    layout = str(images[0].get("layout", "")) if len(images) == 1 else ""
    if not layout.startswith(IMAGE_PREFIX):
        return None
    name, _, fmt = layout[len(IMAGE_PREFIX):].partition(":")
    rec = image_record(name, fmt or "zstd:chunked")
    return sum(len(t.entries) for t in load_tocs(rec.oci_dir, rec.tag)), rec.file_bytes


def run(config: dict[str, Any], seed: int, calibration: Calibration) -> RunOutput:
    if config.get("engine", "sim") == "sim":
        return run_engine(resolve_references(config), seed, for_scenario(calibration, config))
    before = host_probe_s()  # how fast the host is around this measurement (see _host_table)
    out = run_engine(resolve_references(config), seed, calibration)
    probe = {"before_s": before, "after_s": host_probe_s()}
    return dataclasses.replace(out, tables={**out.tables, "host_probe": [probe]})


# -- report ------------------------------------------------------------------------------------
def _label(key: str, value: Any) -> str:
    if key == "cluster.link_bandwidth_bytes_per_s":
        return f"{float(value) * 8 / 1e6:g} Mbit/s"
    if key == "cluster.rtt_s":
        return f"{float(value) * 1e3:g} ms"
    if key == "cluster.nodes":
        return f"{value} node" + ("s" if int(value) != 1 else "")
    return str(value)


def _labelled(table: Table, keys: Sequence[str]) -> Table:
    rows = tuple(tuple(_label(k, v) for k, v in zip(keys, row[: len(keys)], strict=True)) + row[len(keys):]
                 for row in table.rows)
    return dataclasses.replace(table, rows=rows)


def headline(runs: Sequence[RunData]) -> dict[str, float]:
    """The goals: median and max |error| of time to ready, and how many scenarios rank alike."""
    errs = sorted(abs(e.error) for e in point_errors(runs, by=POINT, metrics=("time_to_ready_s",))
                  if not math.isnan(e.error))
    ranks = ranking_agreement(runs, by=SCENARIO_KEYS)
    n = len(errs)
    return {
        "points": float(n),
        "median_abs_error_ready": (errs[n // 2] + errs[(n - 1) // 2]) / 2 if n else math.nan,
        "max_abs_error_ready": errs[-1] if n else math.nan,
        "scenarios": float(len(ranks)),
        "rankings_agree": float(sum(r.agree for r in ranks)),
        "rankings_agree_by_means": float(sum(r.agree and not r.unresolved for r in ranks)),
    }


def _crossover_table(runs: Sequence[RunData]) -> Table:
    link = "cluster.link_bandwidth_bytes_per_s"
    rows = []
    for (rtt, nodes), group in group_runs(runs, ("cluster.rtt_s", "cluster.nodes")).items():
        engines = ("sim", "emulator")
        signs = {e: order_signs(group, along=link, modes=("lazy", "full"), engine=e) for e in engines}
        cells = [", ".join(f"{_label(link, a)}–{_label(link, b)}"
                           for a, b in crossovers(group, along=link, modes=("lazy", "full"), engine=e))
                 or "none" for e in engines]
        unresolved = [x for x, sign in signs["emulator"] if sign is None]
        predicted = dict(signs["sim"])
        alike = all(predicted.get(x) == sign for x, sign in signs["emulator"] if sign is not None)
        if unresolved:
            cells[1] += " (not resolved at " + ", ".join(_label(link, x) for x in unresolved) + ")"
        verdict = ("no" if not alike else "yes" if not unresolved and cells[0] == cells[1]
                   else "consistent: same order wherever resolved")
        rows.append((_label("cluster.rtt_s", rtt), _label("cluster.nodes", nodes), *cells, verdict))
    return Table(title="Crossovers: where lazy and full swap places along the link speed",
                 columns=("RTT", "nodes", "predicted (sim)", "measured (emulator)", "agree"),
                 rows=tuple(rows),
                 note="An interval means time to ready of lazy minus full changes sign between those "
                      "links. Links where the measured seeds do not resolve lazy vs full (Welch's t-test, "
                      "p >= 0.05) are skipped and named; there the measurement cannot place the crossover.")


def _node_cpu(run: RunData, column: str) -> float:
    """Mean CPU seconds per node of one run (NaN when the run did not record it)."""
    rows = run.tables.get("node_cpu", ())
    return mean_ci([float(row[column]) for row in rows if row.get(column, "") != ""]).mean


def _cpu_table(runs: Sequence[RunData]) -> Table:
    """CPU per node, predicted (everything the simulator spends on the shared host) vs measured
    (each emulated node process's CPU time from the origin to its last pod)."""
    rows = []
    for point, group in group_runs(runs, POINT).items():
        engines = {str(k[0]): g for k, g in group_runs(group, ("engine",)).items()}
        p = [_node_cpu(r, "compute_s") for r in engines.get("sim", [])]
        m = [_node_cpu(r, "cpu_s") for r in engines.get("emulator", [])]
        pred, meas = mean_ci(p).mean, mean_ci(m).mean
        if not (math.isnan(pred) or math.isnan(meas)):
            rows.append((*point, pred, meas, pred / meas - 1 if meas > 0 else math.nan))
    return _labelled(Table(
        title="CPU per node: predicted vs measured", columns=(*POINT, "predicted s", "measured s", "error"),
        rows=tuple(rows),
        note="Predicted: every CPU cost the simulator spends for the node on the shared 2-core host (decode, "
             "extract, verify, TOC parsing, request overheads, trace operations). Measured: the node "
             "process's CPU time from the origin to its last pod (all of its Python). Means across nodes "
             "and seeds."), POINT)


def _probe_s(run: RunData) -> float:
    rows = run.tables.get("host_probe", ())
    return (float(rows[0]["before_s"]) + float(rows[0]["after_s"])) / 2 if rows else math.nan


def _host_table(runs: Sequence[RunData], errors: Sequence[PointError]) -> Table | None:
    """The host's speed around each emulated run (experiments/hostprobe.py), and whether the runs
    on the slower half of it measured longer against the prediction (`errors`: `_errors(runs)`)
    than those on the faster half."""
    emulated = [(r, _probe_s(r)) for r in runs if r.config.get("engine") == "emulator"]
    emulated = [(r, p) for r, p in emulated if not math.isnan(p)]
    if len(emulated) < 4:
        return None
    predicted = {e.point: e.predicted for e in errors if e.metric == "time_to_ready_s"}
    ratios = []  # (probe, measured / predicted) per emulated run
    for r, probe in emulated:
        want = predicted.get(tuple(r.factors.get(k) for k in POINT), math.nan)
        got = estimate([r], "time_to_ready_s").mean
        if want > 0 and not math.isnan(got):
            ratios.append((probe, got / want))
    ratios.sort()
    probes = [p for p, _ in ratios] or [p for _, p in emulated]
    rows: list[tuple[str, str]] = [
        ("emulated runs probed", str(len(emulated))),
        ("probe: fastest / median / slowest (ms)",
         f"{min(probes) * 1e3:.2f} / {sorted(probes)[len(probes) // 2] * 1e3:.2f} / {max(probes) * 1e3:.2f}"),
    ]
    if len(ratios) >= 4:
        half = len(ratios) // 2
        fast = sum(q for _, q in ratios[:half]) / half
        slow = sum(q for _, q in ratios[half:]) / (len(ratios) - half)
        corr = float(np.corrcoef([p for p, _ in ratios], [q for _, q in ratios])[0, 1])
        rows += [
            ("measured / predicted ready, runs on the faster / slower half of the host",
             f"{fast:.3f} / {slow:.3f}"),
            ("correlation of probe time with measured / predicted", f"{corr:+.2f}"),
        ]
    return Table(
        title="Host speed during the emulated runs", columns=("", "value"), rows=tuple(rows),
        note="Probe: the fastest of 3 zstd decodes + sha256 of a fixed 4 MiB (the CPU work of a pull), "
             "before and after each emulated run, averaged; a larger time is a slower host. The runs execute "
             "in a random order, so a slow spell falls on points at random; the last two rows say how much "
             "of the measured-vs-predicted spread goes with the host's speed.")


def _errors(runs: Sequence[RunData]) -> list[PointError]:
    """Point errors of the issue's metrics plus `bytes_foreground`; `create_s` only where there is
    a create phase to predict (lazy-prefetch: the prefetch; elsewhere both engines have ~0)."""
    errors = point_errors(runs, by=POINT, metrics=(*METRICS, "bytes_foreground"))
    return [e for e in errors if e.metric != "create_s" or e.point[0] == "lazy-prefetch"]


def _ready_error_by_group(errors: Sequence[PointError]) -> Table:
    """Median and max |error| of time to ready per (nodes, link): where the model holds."""
    groups: dict[tuple[Any, Any], list[float]] = {}
    for e in errors:
        if e.metric == "time_to_ready_s" and not math.isnan(e.error):
            groups.setdefault((e.point[3], e.point[1]), []).append(abs(e.error))
    rows = []
    for (nodes, link), errs in sorted(groups.items(), key=lambda kv: (int(kv[0][0]), float(kv[0][1]))):
        errs.sort()
        n = len(errs)
        rows.append((_label("cluster.nodes", nodes), _label("cluster.link_bandwidth_bytes_per_s", link), n,
                     (errs[n // 2] + errs[(n - 1) // 2]) / 2, errs[-1]))
    return Table(title="Time to ready: error by concurrency and link", rows=tuple(rows),
                 columns=("nodes", "link", "points", "median |error|", "max |error|"))


def tabulate(runs: Sequence[RunData]) -> list[Table]:
    errors = _errors(runs)
    h = headline(runs)
    goals = Table(
        title="Goals",
        columns=("goal", "target", "achieved", "met"),
        rows=(
            ("median |error| of time to ready", "≤ 10%", f"{h['median_abs_error_ready']:.1%}",
             "yes" if h["median_abs_error_ready"] <= 0.10 else "no"),
            ("max |error| of time to ready", "≤ 25%", f"{h['max_abs_error_ready']:.1%}",
             "yes" if h["max_abs_error_ready"] <= 0.25 else "no"),
            ("identical mode ranking", f"{h['scenarios']:.0f} of {h['scenarios']:.0f} scenarios",
             f"{h['rankings_agree']:.0f}", "yes" if h["rankings_agree"] == h["scenarios"] else "no"),
        ),
        note=f"{h['points']:.0f} scenario points, each run in both engines."
             + (f" Ranking: {h['rankings_agree_by_means']:.0f} of {h['scenarios']:.0f} scenarios order every "
                "mode pair alike by the means alone; the others differ only in pairs whose measured order "
                "the seeds do not resolve (Mode ranking below)."
                if h["rankings_agree_by_means"] < h["rankings_agree"] else ""),
    )
    return [
        goals,
        dataclasses.replace(error_summary(errors), note=(
            "bytes_fetched counts background fetch, which the emulator stops when its run ends "
            "(all pods ready) and the simulator runs to the end of the blob; bytes_foreground "
            "leaves it out. create_s: lazy-prefetch points only (its create phase is the prefetch).")),
        _ready_error_by_group(errors),
        _labelled(ranking_table(ranking_agreement(runs, by=SCENARIO_KEYS), by=SCENARIO_KEYS), SCENARIO_KEYS),
        _crossover_table(runs),
        _cpu_table(runs),
        *([host] if (host := _host_table(runs, errors)) is not None else []),
        _labelled(error_table(errors, by=POINT, title="Prediction error at every point"), POINT),
    ]


def plot(runs: Sequence[RunData]) -> list[Plot]:
    errors = [e for e in point_errors(runs, by=POINT, metrics=("time_to_ready_s",))
              if not math.isnan(e.error)]
    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    markers = {"full": "s", "partial": "D", "lazy": "o", "lazy-prefetch": "^"}
    for mode in MODES:
        pts = [e for e in errors if e.point[0] == mode]
        if pts:
            ax.scatter([e.measured for e in pts], [e.predicted for e in pts], marker=markers[mode],
                       label=mode)
    if errors:
        lo = min(min(e.measured, e.predicted) for e in errors) * 0.8
        hi = max(max(e.measured, e.predicted) for e in errors) * 1.25
        xs = [lo, hi]
        ax.plot(xs, xs, color="black", lw=0.8, label="exact")
        ax.fill_between(xs, [x * 0.9 for x in xs], [x * 1.1 for x in xs], color="grey", alpha=0.2,
                        label="±10%")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("measured time to ready, emulator (s)")
    ax.set_ylabel("predicted time to ready, simulator (s)")
    ax.legend(fontsize=8)
    return [Plot(name="ready-predicted-vs-measured", figure=fig,
                 caption="Time to ready: simulator prediction against emulator measurement, "
                         "per scenario point")]


EXPERIMENT = Experiment(
    name="validate",
    description="Both engines on the same scenarios (real python image, recorded trace): "
                "prediction error per metric, mode ranking and crossovers.",
    run=run, effective=engine_effective,
    base=base_config("python", "python_import_json_ssl"),
    factors={"engine": ["sim", "emulator"], "mode": MODES,
             "cluster.link_bandwidth_bytes_per_s": LINKS_BYTES_PER_S, "cluster.rtt_s": RTTS_S,
             "cluster.nodes": NODES},
    # 3 seeds: one emulated start at 1 Gbit/s varies by +-20% run to run (CPU-bound on a shared
    # host); errors and rankings compare means
    replications=3, tabulate=tabulate, plot=plot,
    max_parallel=1,  # emulator runs are wall-clock measurements: never two at once
    shuffle_runs=True,  # ... and the host's speed drifts: a slow spell must not hit one point's seeds
    quick_factors={"engine": ["sim", "emulator"], "mode": ["full", "lazy"],
                   "cluster.link_bandwidth_bytes_per_s": [12.5e6], "cluster.rtt_s": [0.001],
                   "cluster.nodes": [1]},
    quick_replications=1,
    quick_overrides={"images": base_config("busybox", "busybox_shell_script")["images"],
                     "workload": base_config("busybox", "busybox_shell_script")["workload"]},
)
