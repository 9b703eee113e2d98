"""`lazylab node boot`: the pull mode and check-layer-state of a node root `node render` wrote."""

from pathlib import Path

from lazylab.cli import main
from nodeconfig.render import STATE_FILE_PATH

GOLDEN = Path(__file__).parent / "golden"


def _boot(root: Path, capsys, *extra: str) -> dict[str, str]:
    assert main(["node", "boot", "--root", str(root), *extra]) == 0
    out = capsys.readouterr().out
    return dict(line.split(": ", 1) for line in out.splitlines())


def test_boot_follows_the_rendered_configuration(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "etc/containers").mkdir(parents=True)
    (root / "etc/containers/storage.conf").write_text(
        '[storage]\ndriver = "overlay"\n[storage.options.pull_options]\nenable_partial_images = "true"\n'
    )
    assert main(["node", "render", "--config", str(GOLDEN / "crc_enabled.yaml"), "-o", str(root)]) == 0
    capsys.readouterr()
    first = _boot(root, capsys)
    assert first["pull mode"] == "lazy" and first["transition"] == "no state file"
    state = root / STATE_FILE_PATH.lstrip("/")
    assert state.read_text() == first["marker"].strip("'") != ""
    assert _boot(root, capsys)["transition"] == "unchanged"
    assert main(["node", "render", "--config", str(GOLDEN / "crc_disabled.yaml"), "-o", str(root)]) == 0
    capsys.readouterr()
    off = _boot(root, capsys)
    assert off["pull mode"] == "partial"  # the base file's setting survived the drop-in's removal
    assert off["transition"] == "on->off" and state.read_text() == ""
    other = tmp_path / "state"
    assert _boot(root, capsys, "--state-file", str(other))["transition"] == "no state file"
    assert other.read_text() == ""  # lazy off: the empty marker


def test_boot_errors_are_one_line(tmp_path, capsys):
    assert main(["node", "boot", "--root", str(tmp_path / "missing")]) == 2
    (tmp_path / "etc/containers").mkdir(parents=True)
    (tmp_path / "etc/containers/storage.conf").write_text("x = [\n")
    assert main(["node", "boot", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a directory" in err and "not valid TOML" in err and "Traceback" not in err
