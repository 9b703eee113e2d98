"""`report NAME`: reports/NAME.md with tables and PNG plots drawn only from cached results.

Nothing is run here. Each planned (config, seed) is looked up by its current key; when the code
or calibration changed since, the newest cached run of the same config and seed is used instead
and counted as "older" in the report header, so a report never silently mixes in fresh runs and
never needs them. `tabulate` and `plot` receive the successful runs; failures are listed apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

from experiments.cache import ResultCache, collect
from experiments.codeversion import code_version as compute_code_version
from experiments.errors import ResultsError
from experiments.framework import Calibration, Experiment, RunData, Table


def _levels(exp: Experiment) -> Table:
    rows = tuple((k, ", ".join(str(v) for v in levels)) for k, levels in exp.factors.items())
    return Table(title="Factors", columns=("factor", "levels"), rows=rows or (("(none)", ""),))


def _failures(failed: Sequence[RunData]) -> Table:
    rows = tuple((r.result.key[:12], ", ".join(f"{k}={v}" for k, v in r.factors.items()), r.seed,
                  r.result.error.splitlines()[0][:200] if r.result.error else "") for r in failed)
    return Table(title="Failed runs", columns=("key", "factors", "seed", "error"), rows=rows,
                 note="Full tracebacks: results/<experiment>/<key>/result.json.")


def write_report(
    exp: Experiment,
    *,
    results_dir: str | Path = "results",
    reports_dir: str | Path = "reports",
    calibration: Calibration | None = None,
    code_version: str | None = None,
    stem: str | None = None,
) -> Path:
    """Write reports/<stem>.md (+ <stem>-<plot>.png; stem defaults to the experiment's name);
    ResultsError if nothing is cached at all."""
    cal = calibration or Calibration.none()
    version = code_version or compute_code_version(exp.code_packages, extra=(exp.run,))
    cached = collect(exp, ResultCache(results_dir), cal, version)
    if not cached.runs:
        raise ResultsError(f"no cached results for experiment {exp.name!r} under {results_dir}; "
                           f"run `lazylab experiment run {exp.name}` first")
    matplotlib.use("Agg")  # files only, never a window (plots should build Figure() directly)
    out_dir = Path(reports_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = cached.ok
    lines = [f"# {exp.name}", ""]
    if exp.description:
        lines += [exp.description, ""]
    lines += [
        f"Generated {datetime.now(UTC).isoformat(timespec='seconds')} from cached results in "
        f"`{Path(results_dir) / exp.name}` (nothing was re-run).",
        "",
        f"Runs: {cached.planned} planned ({len(exp.points())} factor points x {exp.replications} seeds); "
        f"{cached.exact} cached for the current code and calibration, {cached.older} from an older "
        f"code version or calibration, {cached.missing} missing; {len(cached.failed)} failed.",
        "",
        f"Code version `{version}`; calibration `{cal.digest[:19]}`"
        + (f" ({cal.path})" if cal.path else "") + ".",
        "",
        _levels(exp).to_markdown(),
        "## Results",
        "",
    ]
    lines += [t.to_markdown() for t in exp.tabulate(ok)]
    plots = exp.plot(ok)
    if plots:
        lines += ["## Plots", ""]
    for p in plots:
        fname = f"{stem or exp.name}-{p.name}.png"
        p.figure.savefig(out_dir / fname, dpi=110, bbox_inches="tight")
        lines += [f"![{p.caption or p.name}]({fname})", ""]
        if p.caption:
            lines += [f"*{p.caption}*", ""]
    if cached.failed:
        lines += [_failures(cached.failed).to_markdown()]
    path = out_dir / f"{stem or exp.name}.md"
    path.write_text("\n".join(lines))
    return path
