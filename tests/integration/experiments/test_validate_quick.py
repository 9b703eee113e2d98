"""`validate --quick` end to end: both engines on the real busybox image, cached, reported.

Timings are wall-clock measurements, so nothing here asserts a timing error bound; what must
hold exactly is the plumbing: every run succeeds in both engines, records join row for row,
byte counts of a full pull agree to the byte, a second sweep is all cache hits, and the report
states the goals, the ranking and the crossovers.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from experiments.cache import ResultCache, collect
from experiments.calibration_file import load_calibration
from experiments.codeversion import code_version
from experiments.executor import choose_backend, run_sweep
from experiments.registry import get
from experiments.report import write_report
from experiments.validate import headline, resolve_references
from tests.helpers import require_tool


@pytest.mark.timeout(240)
def test_validate_quick_runs_both_engines_caches_and_reports(image_cache: Path, tmp_path: Path) -> None:
    require_tool("busybox")
    exp = get("validate").quick_variant()
    cal = load_calibration(None)
    results = tmp_path / "results"
    summary = run_sweep(exp, results_dir=results, calibration=cal, backend=choose_backend(workers=1),
                        progress=False)
    assert (summary.total, summary.ran, summary.failed) == (4, 4, 0), summary.first_error

    runs = collect(exp, ResultCache(results), cal, code_version(exp.code_packages, extra=(exp.run,))).ok
    assert len(runs) == 4
    by = {(r.factors["engine"], r.factors["mode"]): r for r in runs}
    for mode in ("full", "lazy"):
        sim, emu = by[("sim", mode)].records, by[("emulator", mode)].records
        assert [(r.node, r.pod, r.image) for r in sim] == [(r.node, r.pod, r.image) for r in emu]
        assert all(r.ok for r in (*sim, *emu))
        assert emu[0].engine == "emulator" and sim[0].engine == "sim"
    # every emulated run carries the host's speed around it (the sim's runs do not need it)
    for (engine, _), r in by.items():
        probes = r.tables.get("host_probe", ())
        assert (len(probes) == 1) == (engine == "emulator")
        assert all(0 < float(p[k]) < 5 for p in probes for k in ("before_s", "after_s"))
    # a full pull moves manifest, config and the blob: the same bytes in both engines
    assert by[("sim", "full")].records[0].bytes_fetched == by[("emulator", "full")].records[0].bytes_fetched
    # lazy: the TOC identical, the rest what the trace and background fetch moved (same image)
    toc = {eng: by[(eng, "lazy")].records[0].bytes_toc for eng in ("sim", "emulator")}
    assert toc["sim"] == pytest.approx(toc["emulator"], rel=0.01)

    h = headline(runs)
    assert h["points"] == 2 and h["scenarios"] == 1
    assert math.isfinite(h["median_abs_error_ready"])
    assert h["max_abs_error_ready"] >= h["median_abs_error_ready"]

    again = run_sweep(exp, results_dir=results, calibration=cal, backend=choose_backend(workers=1),
                      progress=False)
    assert (again.cached, again.ran) == (4, 0)

    report = write_report(exp, results_dir=results, reports_dir=tmp_path / "reports", calibration=cal,
                          stem="validate-quick")
    text = report.read_text()
    for heading in ("### Goals", "### Prediction error by metric", "### Mode ranking", "### Crossovers",
                    "### Prediction error at every point"):
        assert heading in text
    assert (tmp_path / "reports" / "validate-quick-ready-predicted-vs-measured.png").stat().st_size > 1000


def test_references_resolve_to_the_cached_image_and_the_shipped_trace(image_cache: Path) -> None:
    require_tool("busybox")
    cfg = get("validate").quick_variant().plan(load_calibration(None), "v")[0].config
    # run keys do not depend on where the image cache lives
    assert cfg["images"][0]["layout"] == "realimage:busybox:zstd:chunked"
    resolved = resolve_references(cfg)
    assert Path(resolved["images"][0]["layout"], "index.json").is_file()
    assert resolved["workload"]["path"].endswith("experiments/traces/busybox_shell_script.jsonl")
    assert Path(resolved["workload"]["path"]).is_file()
