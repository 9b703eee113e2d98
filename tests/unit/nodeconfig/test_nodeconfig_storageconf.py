"""storage.conf + storage.conf.d merge: later leaves win, nothing else is lost; pull mode derivation."""

import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeconfig.errors import StorageConfError
from nodeconfig.storageconf import (
    NodePullMode,
    dropin_files,
    load_storage_conf,
    merge_storage_conf,
    node_pull_mode,
)
from startup.modes import PullMode

keys = st.sampled_from(["storage", "options", "driver", "mountopt"])  # few names: tables overlap often
leaves = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8),
    st.integers(-1000, 1000),
    st.booleans(),
    st.lists(st.text(alphabet="abc/:", max_size=6), max_size=3),
)
tables = st.recursive(
    st.dictionaries(keys, leaves, max_size=4),
    lambda inner: st.dictionaries(keys, st.one_of(leaves, inner), max_size=4),
    max_leaves=12,
)


def flatten(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaf path -> value; an empty table counts as a leaf (so it cannot silently vanish)."""
    out: dict[tuple[str, ...], Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


def expected_merge(base: dict[str, Any], dropins: list[dict[str, Any]]) -> dict[tuple[str, ...], Any]:
    """The spec, leaf by leaf: a later file's leaf replaces every earlier leaf at or below its path
    and any earlier leaf that is a prefix of it (a scalar replaced by a table)."""
    result = flatten(base)
    for d in dropins:
        for path, value in flatten(d).items():
            # an empty table in a drop-in adds nothing over an existing table
            if value == {} and any(p[: len(path)] == path and len(p) > len(path) for p in result):
                continue
            for p in list(result):
                if p[: len(path)] == path or path[: len(p)] == p:
                    del result[p]
            result[path] = value
    return result


@settings(max_examples=60, deadline=None)
@given(tables, st.lists(tables, max_size=3))
def test_merge_is_leafwise_override_and_loses_nothing(tmp_path_factory, base, dropins):
    tmp = tmp_path_factory.mktemp("conf")
    (tmp / "storage.conf").write_text(tomli_w.dumps(base))
    ddir = tmp / "storage.conf.d"
    ddir.mkdir()
    # Names chosen so that lexical order != creation order: 10 sorts before 9.
    names = [f"{n}-x.conf" for n in ("9", "10", "11")][: len(dropins)]
    order = sorted(range(len(dropins)), key=lambda i: names[i])
    for i in reversed(range(len(dropins))):
        (ddir / names[i]).write_text(tomli_w.dumps(dropins[i]))
    (ddir / "ignored.toml").write_text('[storage]\ndriver = "vfs"\n')  # not *.conf
    merged = load_storage_conf(tmp / "storage.conf")
    assert flatten(merged) == expected_merge(base, [dropins[i] for i in order])
    assert merged == merge_storage_conf(base, [dropins[i] for i in order])


@settings(max_examples=40, deadline=None)
@given(tables)
def test_custom_base_settings_survive_the_lazy_dropin(base):
    base = {**base, "storage": {"driver": "overlay", "options": {"overlay": {"mountopt": "nodev"}}}}
    dropin = {"storage": {"options": {"additionallayerstores": ["/var/lib/stargz-store/store:ref"]}}}
    merged = merge_storage_conf(base, [dropin])
    lost = {k: v for k, v in flatten(base).items() if flatten(merged).get(k) != v}
    assert lost == {}
    assert PullMode(node_pull_mode(merged).value) is PullMode.LAZY


def test_arrays_are_replaced_not_appended_and_later_file_wins(tmp_path):
    (tmp_path / "storage.conf").write_text(
        '[storage]\ndriver = "overlay"\n[storage.options]\nadditionallayerstores = ["/a:ref"]\n'
        '[storage.options.pull_options]\nenable_partial_images = "true"\n'
    )
    d = tmp_path / "storage.conf.d"
    d.mkdir()
    (d / "50-lazy.conf").write_text('[storage.options]\nadditionallayerstores = ["/b:ref"]\n')
    (d / "99-off.conf").write_text("[storage.options]\nadditionallayerstores = []\n")
    assert [p.name for p in dropin_files(d)] == ["50-lazy.conf", "99-off.conf"]
    merged = load_storage_conf(tmp_path / "storage.conf")
    assert merged["storage"]["options"]["additionallayerstores"] == []
    assert merged["storage"]["driver"] == "overlay"
    assert PullMode(node_pull_mode(merged).value) is PullMode.PARTIAL
    (d / "99-off.conf").unlink()
    assert load_storage_conf(tmp_path / "storage.conf")["storage"]["options"]["additionallayerstores"] == [
        "/b:ref"
    ]


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("", PullMode.FULL),
        ('[storage.options.pull_options]\nenable_partial_images = "false"\n', PullMode.FULL),
        ('[storage.options.pull_options]\nenable_partial_images = "true"\n', PullMode.PARTIAL),
        ('[storage.options]\nadditionallayerstores = ["/s:ref"]\n', PullMode.LAZY),
    ],
)
def test_pull_mode(text, mode):
    assert PullMode(node_pull_mode(tomllib.loads(text)).value) is mode


def test_bad_files_are_named(tmp_path):
    (tmp_path / "storage.conf").write_text("[storage\n")
    with pytest.raises(StorageConfError, match=r"storage\.conf: not valid TOML"):
        load_storage_conf(tmp_path / "storage.conf")
    with pytest.raises(StorageConfError, match="additionallayerstores: expected an array"):
        node_pull_mode({"storage": {"options": {"additionallayerstores": "/s:ref"}}})
    assert load_storage_conf(Path(tmp_path / "missing.conf")) == {}


def test_node_pull_modes_are_pull_modes():
    assert {PullMode(m.value) for m in NodePullMode} == {PullMode.FULL, PullMode.PARTIAL, PullMode.LAZY}
