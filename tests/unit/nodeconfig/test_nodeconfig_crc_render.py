"""ContainerRuntimeConfig parsing and what render lays down on a node (golden files)."""

import os
import tomllib
from pathlib import Path

import pytest

from lazylab.cli import main
from nodeconfig.crc import LazyPullMode, parse_crc
from nodeconfig.errors import CrcError
from nodeconfig.layerstate import parse_marker
from nodeconfig.render import DROPIN_PATH, MARKER_PATH, STORE_CONFIG_PATH, UNIT_PATH, render_node
from nodeconfig.storageconf import load_storage_conf, node_pull_mode
from startup.modes import PullMode

GOLDEN = Path(__file__).parent / "golden"
ENABLED = (GOLDEN / "crc_enabled.yaml").read_text()


def rendered_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["enabled", "disabled"])
def test_render_matches_golden(tmp_path, case, capsys):
    out = tmp_path / "out"
    status = main(["node", "render", "--config", str(GOLDEN / f"crc_{case}.yaml"), "-o", str(out)])
    assert status == 0
    got = rendered_tree(out)
    golden_root = GOLDEN / f"render_{case}"
    if os.environ.get("LAZYLAB_UPDATE_GOLDEN"):
        for rel, text in got.items():
            (golden_root / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden_root / rel).write_text(text)
    assert got == rendered_tree(golden_root)


def test_enabled_node_is_lazy_and_keeps_base_settings(tmp_path):
    node = render_node(parse_crc(ENABLED), "worker")
    files = node.by_path()
    assert set(files) == {UNIT_PATH, DROPIN_PATH, STORE_CONFIG_PATH, MARKER_PATH}
    unit = files[UNIT_PATH].content
    assert "Before=crio.service" in unit and "RequiredBy=crio.service" in unit
    tomllib.loads(files[STORE_CONFIG_PATH].content)  # valid TOML
    assert parse_marker(node.marker) == (1, 1, ("/var/lib/stargz-store/store:ref",))
    # Lay the drop-in over a node's own storage.conf: the node becomes lazy, custom keys survive.
    etc = tmp_path / "etc/containers"
    (etc / "storage.conf.d").mkdir(parents=True)
    (etc / "storage.conf").write_text(
        '[storage]\ndriver = "overlay"\ngraphroot = "/data/containers"\n'
        '[storage.options]\nadditionalimagestores = ["/mnt/images"]\n'
        '[storage.options.overlay]\nmountopt = "nodev,metacopy=on"\n'
    )
    (etc / "storage.conf.d/lazy-image-pull.conf").write_text(files[DROPIN_PATH].content)
    merged = load_storage_conf(etc / "storage.conf")
    assert PullMode(node_pull_mode(merged).value) is PullMode.LAZY
    assert merged["storage"]["graphroot"] == "/data/containers"
    assert merged["storage"]["options"]["additionalimagestores"] == ["/mnt/images"]
    assert merged["storage"]["options"]["overlay"]["mountopt"] == "nodev,metacopy=on"


def test_disabled_node_has_empty_marker_and_no_store():
    node = render_node(parse_crc(ENABLED.replace("Enabled", "Disabled")))
    assert node.marker == "" and set(node.absent) == {UNIT_PATH, DROPIN_PATH, STORE_CONFIG_PATH}
    assert node.by_path()[MARKER_PATH].content == ""


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda s: s.replace("mode: Enabled", "mode: On"),
            "spec.containerRuntimeConfig.lazyImagePull.mode: unknown value 'On' "
            "(expected Enabled or Disabled)",
        ),
        (
            lambda s: s.replace("      mode: Enabled\n", "      - Enabled\n"),
            "spec.containerRuntimeConfig.lazyImagePull: expected a mapping",
        ),
        (
            lambda s: s.replace(
                "    lazyImagePull:\n      mode: Enabled\n", "    lazyImagePull:\n      x: 1\n"
            ),
            "spec.containerRuntimeConfig.lazyImagePull.mode: missing",
        ),
        (lambda s: s.split("  containerRuntimeConfig:")[0], "spec.containerRuntimeConfig: missing"),
        (
            lambda s: s.replace("kind: ContainerRuntimeConfig", "kind: KubeletConfig"),
            "kind: unsupported value",
        ),
        (lambda s: s.replace("machineconfiguration.openshift.io/v1\n", "v1\n", 1), "apiVersion: unsupported"),
        (
            lambda s: s.replace(
                '    matchLabels:\n      pools.operator.machineconfiguration.openshift.io/worker: ""\n',
                "    matchLabels: {}\n",
            ),
            "spec.machineConfigPoolSelector.matchLabels: must select at least one label",
        ),
        (
            lambda s: s.replace("  machineConfigPoolSelector:", "  machineConfigPoolSelectorX:"),
            "spec.machineConfigPoolSelector: missing",
        ),
        (lambda s: "- just\n- a list\n", "(document): expected a mapping"),
        (lambda s: "a: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_crc_names_the_field(mutate, message):
    with pytest.raises(CrcError) as err:
        parse_crc(mutate(ENABLED))
    assert message in str(err.value)


def test_mode_parses():
    assert parse_crc(ENABLED).lazy_mode is LazyPullMode.ENABLED
    assert parse_crc(ENABLED).pools == ("worker",)


def test_render_rejects_unselected_pool_and_cli_prints_one_line(tmp_path, capsys):
    with pytest.raises(CrcError, match="does not select pool 'master'"):
        render_node(parse_crc(ENABLED), "master")
    bad = tmp_path / "bad.yaml"
    bad.write_text(ENABLED.replace("Enabled", "On"))
    assert main(["node", "render", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lazylab: error: spec.containerRuntimeConfig.lazyImagePull.mode: unknown value 'On' "
        "(expected Enabled or Disabled)"
    ]


def test_custom_selector_labels_need_an_explicit_pool():
    custom = ENABLED.replace("pools.operator.machineconfiguration.openshift.io/worker", "custom-crio")
    with pytest.raises(CrcError, match="names no standard pool label; name the pool with --pool"):
        render_node(parse_crc(custom))
    assert render_node(parse_crc(custom), "infra").pool == "infra"
