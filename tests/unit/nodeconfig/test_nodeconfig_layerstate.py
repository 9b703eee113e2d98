"""check-layer-state transitions: off->on, on->off, unchanged, missing or unreadable state file."""

import pytest

from lazylab.cli import main
from nodeconfig.errors import LayerStateError
from nodeconfig.layerstate import ImageRecord, Transition, check_layer_state, parse_marker
from nodeconfig.render import state_marker

ON = state_marker(["/var/lib/stargz-store/store:ref"])
OTHER = state_marker(["/other/store:ref"])
IMAGES = (
    ImageRecord(reference="r/lazy-a:1", als_layers=3, size_bytes=100),
    ImageRecord(reference="r/full:1", als_layers=0, size_bytes=5000),
    ImageRecord(reference="r/lazy-b:1", als_layers=1, size_bytes=10),
)
LAZY = (IMAGES[0], IMAGES[2])


@pytest.mark.parametrize(
    ("previous", "current", "transition", "removed"),
    [
        (ON, ON, Transition.UNCHANGED, ()),
        ("", "", Transition.UNCHANGED, ()),
        (ON + "\n", ON, Transition.UNCHANGED, ()),  # a trailing newline in the state file is not a change
        ("", ON, Transition.ENABLED, LAZY),
        (ON, "", Transition.DISABLED, LAZY),
        (ON, OTHER, Transition.RECONFIGURED, LAZY),
        (None, ON, Transition.NO_STATE, LAZY),
        (None, "", Transition.NO_STATE, LAZY),
        ("garbage", ON, Transition.CORRUPT_STATE, LAZY),
    ],
)
def test_transitions(previous, current, transition, removed):
    d = check_layer_state(previous, current, IMAGES)
    assert d.transition is transition
    assert d.remove == removed
    assert d.new_state == current
    assert d.changed == (transition is not Transition.UNCHANGED)
    assert d.removed_bytes == sum(i.size_bytes for i in removed)


def test_off_to_on_with_only_full_images_removes_nothing():
    d = check_layer_state("", ON, [IMAGES[1]])
    assert d.transition is Transition.ENABLED and d.remove == ()


def test_marker_parsing():
    assert parse_marker("") is None
    assert parse_marker('version=1;store-format=1;ALS="/a:ref,/b"') == (1, 1, ("/a:ref", "/b"))
    with pytest.raises(LayerStateError, match="does not match"):
        check_layer_state(ON, "version=x", IMAGES)
    with pytest.raises(ValueError, match="als_layers"):
        ImageRecord(reference="x", als_layers=-1)


def test_cli_check_layer_state_applies_new_state(tmp_path, capsys):
    state = tmp_path / "layer-state"
    images = tmp_path / "images.json"
    images.write_text('[{"reference": "r/lazy:1", "als_layers": 2}, {"reference": "r/full:1"}]')
    assert (
        main(
            [
                "node",
                "check-layer-state",
                "--state-file",
                str(state),
                "--marker",
                ON,
                "--images",
                str(images),
                "--apply",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "transition: no state file" in out and "remove: r/lazy:1" in out and "r/full:1" not in out
    assert state.read_text() == ON
    assert main(["node", "check-layer-state", "--state-file", str(state), "--marker", ON]) == 0
    assert capsys.readouterr().out == "transition: unchanged\n"
