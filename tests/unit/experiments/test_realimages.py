"""Real-image plumbing without building a real image: host copying, recipe/format errors, trace stats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from experiments import realimages
from experiments.realimages_trees import HostCopier, ImageRecipeError, apt_mirror
from experiments.record_traces import TRACE_SPECS, missing_paths, trace_spec, trace_stats
from imageformat.build import build_image
from imageformat.toc import normalize_path
from startup.trace import Op, Trace, TraceOp


def test_host_copier_keeps_symlinked_directories_and_modes(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "usr/lib").mkdir(parents=True)
    (host / "usr/lib/libx.so.1.2").write_bytes(b"\x7fELF...")
    (host / "usr/lib/libx.so.1.2").chmod(0o751)
    os.symlink("libx.so.1.2", host / "usr/lib/libx.so.1")
    os.symlink("usr/lib", host / "lib")  # Debian's merged /usr
    root = tmp_path / "root"
    root.mkdir()
    copier = HostCopier(root)
    copier.add(str(host / "lib/libx.so.1"))
    copier.finish()
    mirror = root / str(host).lstrip("/")
    assert os.readlink(mirror / "lib") == "usr/lib"
    assert os.readlink(mirror / "usr/lib/libx.so.1") == "libx.so.1.2"
    assert (mirror / "lib/libx.so.1").read_bytes() == b"\x7fELF..."
    assert (mirror / "usr/lib/libx.so.1.2").stat().st_mode & 0o777 == 0o751


def test_host_copier_names_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ImageRecipeError, match="does not exist"):
        HostCopier(tmp_path).add(str(tmp_path / "nope/file"))


def test_unknown_recipe_and_format_are_specific_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAZYLAB_CACHE", str(tmp_path))
    with pytest.raises(ImageRecipeError, match="unknown image recipe 'alpine'"):
        realimages.prepare_image("alpine", "gzip")
    with pytest.raises(ImageRecipeError, match="unknown layer format 'lz4'"):
        realimages.prepare_image("busybox", "lz4")
    with pytest.raises(ImageRecipeError, match="unknown trace"):
        trace_spec("nope")
    assert realimages.cache_root() == tmp_path


def test_cli_rejects_unknown_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        realimages.main(["build", "alpine"])
    assert "invalid choice" in capsys.readouterr().err


def test_every_trace_spec_names_a_recipe() -> None:
    for spec in TRACE_SPECS.values():
        assert spec.image in realimages.RECIPES
        assert spec.argv[0].startswith("/")
    assert {r.name for r in realimages.RECIPES.values() if r.cheap} == {"busybox", "python"}


def test_apt_mirror_is_the_debian_archive_when_apt_is_configured() -> None:
    if not Path("/etc/apt").is_dir():
        pytest.skip("not a Debian machine")
    assert apt_mirror().startswith(("http://", "https://"))


def test_trace_stats_counts_distinct_bytes_and_chunks(tmp_path: Path) -> None:
    src = tmp_path / "tree"
    (src / "data").mkdir(parents=True)
    big = os.urandom(400_000)
    (src / "data/big").write_bytes(big)
    (src / "data/small").write_bytes(b"x" * 1000)
    os.link(src / "data/small", src / "data/small-link")
    built = build_image(src, tmp_path / "oci", "t", "zstd:chunked")
    tocs = realimages.load_tocs(built.oci_dir, "t")
    trace = Trace.of(
        [
            TraceOp(op=Op.STAT, path="data"),
            TraceOp(op=Op.OPEN, path="data/big"),
            TraceOp(op=Op.READ, path="data/big", offset=0, length=100_000),
            TraceOp(op=Op.READ, path="data/big", offset=50_000, length=100_000),  # overlaps the first
            TraceOp(op=Op.READ, path="data/small-link", offset=0, length=1000),  # hardlink -> data/small
        ]
    )
    st = trace_stats(trace, tocs)
    assert st.bytes_read == 201_000
    assert st.unique_bytes_read == 151_000
    assert st.files_read == 2
    assert st.image_file_bytes == 401_000
    assert st.fraction_read == pytest.approx(151_000 / 401_000)
    assert 0 < st.chunk_bytes <= st.block_bytes <= st.blob_bytes == built.layers[0].size
    assert missing_paths(trace, tocs) == []
    assert missing_paths(Trace.of([TraceOp(op=Op.STAT, path="etc/none")]), tocs) == ["etc/none"]


@pytest.mark.parametrize("name", sorted(TRACE_SPECS))
def test_shipped_traces_are_well_formed(name: str) -> None:
    path = Path(realimages.__file__).parent / "traces" / f"{name}.jsonl"
    assert path.exists(), f"{name} is not shipped"
    trace = Trace.load(path)
    assert trace.name == name and trace.image == TRACE_SPECS[name].image
    assert len(trace) > 10 and trace.bytes_read > 0
    for op in trace:
        assert normalize_path(op.path) == op.path
    assert any(o.op is Op.READ for o in trace)
