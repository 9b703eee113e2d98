"""`lazylab image`: exit statuses and one-line errors (no tracebacks), in-process and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from imgtrees import Node, tar_bytes

from imageformat.sampletree import write_sample_tree
from lazylab.cli import main


@pytest.fixture(scope="module")
def tree(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("cli") / "src"
    write_sample_tree(root, total_bytes=1 << 20, seed=3)
    return root


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lazylab"), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_build_inspect_verify(tree, tmp_path, capsys):
    prio = tmp_path / "prio.txt"
    prio.write_text("# first things first\netc/app.d/conf01.conf\n")
    oci = str(tmp_path / "oci")
    assert (
        main(
            [
                "image",
                "build",
                str(tree),
                "-o",
                oci,
                "--tag",
                "v1",
                "--format",
                "estargz",
                "--prioritize",
                str(prio),
            ]
        )
        == 0
    )
    assert main(["image", "build", str(tree), "-o", oci, "--tag", "plain", "--format", "gzip"]) == 0
    capsys.readouterr()
    assert main(["image", "inspect", oci, "--tag", "v1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    layer = info["layers"][0]
    assert layer["format"] == "estargz" and layer["files"] > 20 and layer["chunks"] > 20
    assert layer["toc_bytes"] > 0 and layer["compressed_size"] < layer["uncompressed_size"]
    assert main(["image", "inspect", oci, "--tag", "plain"]) == 0
    assert "gzip" in capsys.readouterr().out
    assert main(["image", "verify", oci, "--tag", "v1"]) == 0
    assert capsys.readouterr().out.startswith("ok:")
    assert (
        main(["image", "convert", oci, "--src-tag", "plain", "-o", str(tmp_path / "z"), "--format", "zstd"])
        == 0
    )
    assert main(["image", "verify", str(tmp_path / "z")]) == 0


def _one_line_error(capsys, argv: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    """In-process: status 2 (verify: 1), one `lazylab: error:` line on stderr (a traceback fails the test)."""
    capsys.readouterr()
    assert main(argv) == (1 if argv[:2] == ["image", "verify"] else 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lazylab: error:") and fragment in err[0], err


def test_real_process_prints_one_line_and_no_traceback(tmp_path):
    proc = run("image", "convert", str(tmp_path), "-o", str(tmp_path / "out"), "--format", "zstd")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"lazylab: error: {tmp_path}: no oci-layout file (not an OCI image layout)"
    ]
    proc = run("image", "verify", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"lazylab: error: verify failed: {tmp_path}: no oci-layout file (not an OCI image layout)"
    ]


def test_user_errors_are_one_line(tree, tmp_path, capsys):
    oci = str(tmp_path / "oci")
    _one_line_error(
        capsys,
        ["image", "build", str(tree), "-o", oci, "--tag", "t", "--format", "lz4"],
        "unknown layer format",
    )
    evil = tmp_path / "evil.tar"
    evil.write_bytes(tar_bytes([Node("../../outside", "reg", data=b"x")]))
    _one_line_error(
        capsys, ["image", "build", str(evil), "-o", oci, "--tag", "t", "--format", "estargz"], "escapes"
    )
    assert not (tmp_path.parent / "outside").exists()
    escape = tmp_path / "escape.tar"
    escape.write_bytes(tar_bytes([Node("up", "symlink", link="../../../etc")]))
    assert main(["image", "build", str(escape), "-o", oci, "--tag", "esc", "--format", "estargz"]) == 0
    _one_line_error(capsys, ["image", "verify", oci, "--tag", "esc"], "escapes the root")
    prio = tmp_path / "p.txt"
    prio.write_text("not/there\n")
    _one_line_error(
        capsys,
        [
            "image",
            "build",
            str(tree),
            "-o",
            oci,
            "--tag",
            "t",
            "--format",
            "estargz",
            "--prioritize",
            str(prio),
        ],
        "does not contain",
    )
    _one_line_error(
        capsys,
        ["image", "convert", str(tmp_path / "nope"), "-o", oci, "--format", "zstd"],
        "not an OCI image layout",
    )


def test_verify_reports_corruption_and_bombs(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "zeros").write_bytes(bytes(4 << 20))
    oci = tmp_path / "oci"
    assert main(["image", "build", str(src), "-o", str(oci), "--tag", "t", "--format", "zstd"]) == 0
    assert main(["image", "verify", str(oci)]) == 0
    _one_line_error(capsys, ["image", "verify", str(oci), "--max-decompressed", "1M"], "exceeds the cap")
    index = json.loads((oci / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((oci / "blobs/sha256" / manifest_digest).read_text())
    layer_path = oci / "blobs/sha256" / manifest["layers"][0]["digest"].split(":")[1]
    data = layer_path.read_bytes()
    layer_path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    _one_line_error(capsys, ["image", "verify", str(oci)], "layer 0")
