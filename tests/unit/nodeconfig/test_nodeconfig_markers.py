"""The marker a configuration implies: from a merged storage.conf (emulator) and from a pool
toggle's pull modes (simulator); both agree with what `render_node` writes."""

import pytest

from nodeconfig.crc import parse_crc_object
from nodeconfig.errors import StorageConfError
from nodeconfig.layerstate import Transition, check_layer_state, parse_marker
from nodeconfig.markers import marker_for_storage_conf, pool_toggle_markers
from nodeconfig.render import ALS_ENTRY, render_node, state_marker
from nodeconfig.storageconf import merge_storage_conf

ON = state_marker([ALS_ENTRY])


def _crc(mode: str) -> dict:
    return {
        "apiVersion": "machineconfiguration.openshift.io/v1",
        "kind": "ContainerRuntimeConfig",
        "metadata": {"name": "lazy"},
        "spec": {
            "machineConfigPoolSelector": {
                "matchLabels": {"pools.operator.machineconfiguration.openshift.io/worker": ""}
            },
            "containerRuntimeConfig": {"lazyImagePull": {"mode": mode}},
        },
    }


def test_marker_of_a_conf_with_stores_lists_them_in_order():
    conf = {"storage": {"options": {"additionallayerstores": ["/a:ref", "/b:ref"]}}}
    assert marker_for_storage_conf(conf) == 'version=1;store-format=1;ALS="/a:ref,/b:ref"'


@pytest.mark.parametrize("conf", [{}, {"storage": {"driver": "overlay"}}, {"storage": {"options": {}}}])
def test_no_additional_layer_store_means_the_empty_marker(conf):
    assert marker_for_storage_conf(conf) == ""


def test_bad_store_list_is_a_storage_conf_error():
    with pytest.raises(StorageConfError, match="additionallayerstores"):
        marker_for_storage_conf({"storage": {"options": {"additionallayerstores": "x"}}})


def test_the_rendered_dropin_implies_the_rendered_marker():
    import tomllib

    node = render_node(parse_crc_object(_crc("Enabled")))
    dropin = tomllib.loads(node.by_path()["/etc/containers/storage.conf.d/lazy-image-pull.conf"].content)
    merged = merge_storage_conf({"storage": {"driver": "overlay"}}, [dropin])
    assert marker_for_storage_conf(merged) == node.marker == ON
    assert render_node(parse_crc_object(_crc("Disabled"))).marker == marker_for_storage_conf({}) == ""


@pytest.mark.parametrize(
    ("before", "after", "transition"),
    [
        ("full", "lazy", Transition.ENABLED),
        ("partial", "lazy-prefetch", Transition.ENABLED),
        ("lazy", "full", Transition.DISABLED),
        ("lazy-prefetch", "partial", Transition.DISABLED),
        ("lazy", "lazy", Transition.RECONFIGURED),
        ("full", "partial", Transition.UNCHANGED),
        ("full", "full", Transition.UNCHANGED),
    ],
)
def test_pool_toggle_markers(before, after, transition):
    m0, m1 = pool_toggle_markers(before, after)
    for m in (m0, m1):
        parse_marker(m)  # well formed
    assert check_layer_state(m0, m1, ()).transition is transition
    assert (m0 == ON) == (before.startswith("lazy"))
