"""`lazylab lazy ls|stat|cat` and `lazylab pull` against docker-registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from emulator_fixtures import sample_files

from lazylab.cli import main
from startup.record import read_csv
from startup.trace import Op, Trace, TraceOp

pytestmark = pytest.mark.interop


def test_lazy_ls_stat_cat(built_images: dict[str, str], capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    ref = built_images["estargz"]
    assert main(["lazy", "ls", ref, "usr/bin"]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert "big" in out and "link -> big" in out
    assert main(["lazy", "stat", ref, "usr/bin/hard"]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert "Size: 3000000" in out and "Links: 2" in out
    assert main(["lazy", "cat", ref, "etc/app.conf"]) == 0
    assert capsysbinary.readouterr().out == sample_files()["etc/app.conf"]


def test_lazy_errors_are_one_line(built_images: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    ref = built_images["estargz"]
    assert main(["lazy", "cat", ref, "no/such/file"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lazylab: error: no/such/file") and len(err.splitlines()) == 1
    assert main(["lazy", "ls", "not a ref"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["lazy", "ls", ref.replace("built:", "built-missing:")]) == 2
    assert "manifest unknown" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["full", "partial", "lazy", "lazy-prefetch"])
def test_pull_prints_phases(
    built_images: dict[str, str], mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.jsonl"
    Trace.of([TraceOp(op=Op.READ, path="etc/hello", offset=0, length=10)]).save(trace)
    out_csv = tmp_path / "r.csv"
    code = main(
        [
            "pull",
            built_images["estargz"],
            "--mode",
            mode,
            "--trace",
            str(trace),
            "--quiet",
            "--records",
            str(out_csv),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "time to ready" in out and "bytes_toc" in out
    (rec,) = read_csv(out_csv)
    assert rec.mode.value == mode and rec.ok
