"""`lazylab experiment run calibrate`: measure this machine, fit `CalibratedParams`, write the file.

One run (measurements are serial: parallel runs would measure each other) produces the
`measurements` table (experiments/measure.py); `after` fits it (experiments/calibration.py) and
writes the params file named by `params_out` (the committed default for the full variant, a
scratch file under results/ for `--quick`). The report tabulates every parameter with its fit
error and plots measured against predicted GET times, all from the cached measurements.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from experiments.calibration import SIM_FIELDS, FittedParams, Measurement, fit_params
from experiments.calibration_file import DEFAULT_PARAMS_PATH, write_params
from experiments.framework import Calibration, Experiment, Plot, RunData, RunOutput, Table


def run_calibration(config: dict[str, Any], seed: int, calibration: Calibration) -> RunOutput:
    from experiments.measure import measure_all  # the emulator and registry load only here
    from experiments.scratch import scratch_dir

    load_before = os.getloadavg()[0]
    ms, notes = measure_all(config, seed)
    load_after = os.getloadavg()[0]
    notes.append(f"1-minute load average {load_before:.1f} before and {load_after:.1f} after measuring "
                 f"on {os.cpu_count()} CPUs (a busy machine inflates and scatters the costs); "
                 f"files written under {scratch_dir()}")
    rows = [{f: getattr(m, f) for f in Measurement.__dataclass_fields__} for m in ms]
    return RunOutput(tables={"measurements": rows, "notes": [{"note": n} for n in notes]})


def measurements(runs: Sequence[RunData]) -> list[Measurement]:
    return [Measurement.from_row(row) for run in runs for row in run.tables.get("measurements", [])]


def _unit(name: str) -> str:
    for suffix, unit in (("_bytes_per_s", "B/s"), ("_byte_s", "s/B"), ("_s_per_byte", "s/B"),
                         ("_s_per_unit", "s"), ("_s", "s")):
        if name.endswith(suffix):
            return unit
    return "1"


def params_table(fitted: FittedParams) -> Table:
    rows = []
    names = [*SIM_FIELDS, "model_request_overhead_s", "model_rtts_per_request", "model_range_overhead_s",
             "model_decode_call_s", "model_extract_file_s"]
    for name in names:
        st = fitted.fit.get(name)
        fitted_text = "yes" if st and st.fitted else "no (default)"
        rows.append((name, float(getattr(fitted, name)), _unit(name), fitted_text,
                     st.stderr if st else math.nan, st.n if st else 0, st.rmse_s if st else math.nan,
                     st.r2 if st else math.nan, st.rel_error_median if st else math.nan))
    levels = fitted.model_bandwidth_levels_bytes_per_s
    for b, e in zip(levels, fitted.model_bandwidth_efficiencies, strict=True):
        st = fitted.fit[f"model_bandwidth_efficiency@{b:.6g}"]
        rows.append((f"model efficiency @ {b * 8 / 1e6:g} Mbit/s", e, "1", "yes", st.stderr, st.n, st.rmse_s,
                     st.r2, st.rel_error_median))
    return Table(title="Calibrated parameters", rows=tuple(rows),
                 columns=("parameter", "value", "unit", "fitted", "stderr", "n", "group RMSE (s)", "group R²",
                          "group median |rel. error|"),
                 note="Group statistics describe the fit of the operation group the parameter belongs to "
                      "(weighted least squares on relative residuals).")


def tabulate(runs: Sequence[RunData]) -> list[Table]:
    ms = measurements(runs)
    if not ms:
        return []
    fitted = fit_params(ms)
    tables = [params_table(fitted)]
    gets = [m for m in ms if m.op == "range_get"]
    if gets:
        groups: dict[tuple[float, float], list[float]] = {}
        for m in gets:
            pred = fitted.predict_get_s(m.nbytes, m.bandwidth_bytes_per_s, m.rtt_s)
            groups.setdefault((m.bandwidth_bytes_per_s, m.rtt_s), []).append(pred / m.duration_s - 1.0)
        rows = tuple((f"{bw * 8 / 1e6:g}", f"{rtt * 1e3:g}", len(errs), _median(errs), max(map(abs, errs)))
                     for (bw, rtt), errs in sorted(groups.items()))
        tables.append(Table(title="GET prediction error per link (simulator form)",
                            columns=("Mbit/s", "RTT ms", "n", "median (pred/meas - 1)",
                                     "max |pred/meas - 1|"),
                            rows=rows))
    notes = [row["note"] for run in runs for row in run.tables.get("notes", [])]
    if notes:
        tables.append(Table(title="Notes", columns=("note",), rows=tuple((n,) for n in notes)))
    return tables


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return (s[n // 2] + s[(n - 1) // 2]) / 2 if n else math.nan


def plot(runs: Sequence[RunData]) -> list[Plot]:
    ms = [m for m in measurements(runs) if m.op == "range_get"]
    if not ms:
        return []
    fitted = fit_params(measurements(runs))
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    for bw in sorted({m.bandwidth_bytes_per_s for m in ms}):
        sel = [m for m in ms if m.bandwidth_bytes_per_s == bw]
        ax.scatter([fitted.predict_get_s(m.nbytes, bw, m.rtt_s) for m in sel], [m.duration_s for m in sel],
                   s=10, label=f"{bw * 8 / 1e6:g} Mbit/s")
    lo = min(m.duration_s for m in ms) / 2
    hi = max(m.duration_s for m in ms) * 2
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted GET time (s), simulator form")
    ax.set_ylabel("measured GET time (s)")
    ax.legend()
    caption = "Range GETs over shaped loopback links: measured vs fitted"
    return [Plot(name="gets", figure=fig, caption=caption)]


def after(runs: Sequence[RunData]) -> str:
    ms = measurements(runs)
    if not runs or not ms:
        return "calibrate: no measurements, no params file written"
    target = str(runs[0].config.get("params_out", ""))
    if not target:
        return "calibrate: params_out is empty, no params file written"
    out = DEFAULT_PARAMS_PATH if target == "default" else Path(target)
    notes = [row["note"] for run in runs for row in run.tables.get("notes", [])]
    note = "; ".join([f"{len(ms)} measurements, experiment run {runs[0].result.key}", *notes])
    # dated by the measurement run, so a cache hit rewrites the same bytes (the same digest)
    cal = write_params(fit_params(ms), out, note=note, created_utc=runs[0].result.finished_utc)
    return f"calibrate: wrote {out} ({len(ms)} measurements), calibration digest {cal.digest}"


BASE: Mapping[str, Any] = {
    "params_out": "default",  # experiments/params/default.toml; else a path (relative to the cwd)
    "links": {"bandwidths_bytes_per_s": [1.25e6, 1.25e7, 1.25e8], "rtts_s": [0.001, 0.05], "requests": 24,
              "max_transfer_s": 1.0, "max_ranges": 8, "blob_bytes": 8 << 20},
    "decode": {"samples": 40, "max_bytes": 4 << 20},
    "extract": {"batches": 24, "max_files": 400},
    "fuse": {"reads": 80, "max_bytes": 1 << 20},
    "lazy": {"layers": 16, "max_files": 2000, "batches_per_layer": 6, "max_units": 64},
}

EXPERIMENT = Experiment(
    name="calibrate",
    description="Measure this machine (emulator against registry_mock over shaped loopback links, FUSE, "
                "decoders, extraction) and fit the simulator's CalibratedParams.",
    run=run_calibration, base=BASE, replications=1, uses_calibration=False, max_parallel=1,
    code_packages=("emulator", "registry_mock", "imageformat", "startup"),
    tabulate=tabulate, plot=plot, after=after,
    quick_overrides={"params_out": "results/calibrate/params-quick.toml",
                     "links.bandwidths_bytes_per_s": [1.25e7, 1.25e8], "links.rtts_s": [0.001, 0.02],
                     "links.requests": 10, "links.max_transfer_s": 0.3, "decode.samples": 10,
                     "decode.max_bytes": 1 << 20, "extract.batches": 8, "extract.max_files": 100,
                     "fuse.reads": 20, "fuse.max_bytes": 256 << 10, "lazy.layers": 4, "lazy.max_files": 200},
)
