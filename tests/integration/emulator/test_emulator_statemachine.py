"""A hypothesis state machine reads random ranges of random files of random images (every lazy format
imageformat can write) through the lazy store, served by registry_mock, and compares them with the
source trees; it also drops caches and switches fetch granularity on the way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulator_fixtures import MockImages
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from emulator.lazyview import LazyOptions, OpenedView, open_lazy_view
from emulator.store import Granularity, StoreOptions
from registry_mock.app import running_registry
from startup.scenario import NoPrefetch


@pytest.fixture(scope="module")
def served(mock_images: MockImages) -> Iterator[tuple[MockImages, str]]:
    with running_registry(storage=mock_images.storage) as reg:
        yield mock_images, reg.address


def test_lazy_store_state_machine(served: tuple[MockImages, str]) -> None:
    images, address = served
    contents = {seed: images.files(seed) for seed in images.trees}
    keys = sorted(images.refs)

    class LazyReads(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            self.views: dict[tuple[int, str, Granularity], OpenedView] = {}
            self.reads = 0

        def view(self, key: tuple[int, str], granularity: Granularity) -> OpenedView:
            k = (*key, granularity)
            if k not in self.views:
                opts = LazyOptions(store=StoreOptions(granularity=granularity), prefetch=NoPrefetch())
                self.views[k] = open_lazy_view(f"{address}/{images.refs[key]}", opts)
            return self.views[k]

        @rule(
            key=st.sampled_from(keys),
            granularity=st.sampled_from(list(Granularity)),
            pick=st.integers(0, 10_000),
            where=st.floats(0, 1),
            length=st.integers(0, 300_000),
        )
        def read(
            self, key: tuple[int, str], granularity: Granularity, pick: int, where: float, length: int
        ) -> None:
            files = contents[key[0]]
            names = sorted(files)
            name = names[pick % len(names)]
            data = files[name]
            offset = int(where * (len(data) + 10))
            got = self.view(key, granularity).view.read(name, offset, length)
            assert got == data[offset : offset + length], (key, granularity, name, offset, length)
            self.reads += 1

        @rule(key=st.sampled_from(keys), granularity=st.sampled_from(list(Granularity)))
        def drop(self, key: tuple[int, str], granularity: Granularity) -> None:
            opened = self.views.pop((*key, granularity), None)
            if opened is not None:
                opened.close()

        @rule(key=st.sampled_from(keys), pick=st.integers(0, 10_000))
        def stat(self, key: tuple[int, str], pick: int) -> None:
            files = contents[key[0]]
            names = sorted(files)
            name = names[pick % len(names)]
            assert self.view(key, Granularity.CHUNK).view.stat(name).size == len(files[name])

        @invariant()
        def bounded(self) -> None:
            assert len(getattr(self, "views", {})) <= 2 * len(keys) * len(Granularity)

        def teardown(self) -> None:
            for opened in getattr(self, "views", {}).values():
                opened.close()

    LazyReads.TestCase.settings = settings(
        max_examples=12, stateful_step_count=15, deadline=None, suppress_health_check=list(HealthCheck)
    )
    LazyReads.TestCase().runTest()
