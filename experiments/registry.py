"""The experiments by name: the one table from name to the module attribute that declares it.

Entries are imported lazily, so `lazylab experiment list` does not import every engine. An
entry's attribute is an `Experiment`, or a zero-argument function returning one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from experiments.errors import UnknownExperimentError
from experiments.framework import Experiment

# name -> "module:attribute"
EXPERIMENTS: dict[str, str] = {
    "calibrate": "experiments.calibrate:EXPERIMENT",
    "example": "experiments.example:EXPERIMENT",
    "study_1_startup_gain": "experiments.study_1_startup_gain:EXPERIMENT",
    "study_2_registry_capacity": "experiments.study_2_registry_capacity:EXPERIMENT",
    "study_3_fuse_overhead": "experiments.study_3_fuse_overhead:EXPERIMENT",
    "study_4_prefetch": "experiments.study_4_prefetch:EXPERIMENT",
    "study_5_high_latency": "experiments.study_5_high_latency:EXPERIMENT",
    "study_6_pool_toggle": "experiments.study_6_pool_toggle:EXPERIMENT",
    "validate": "experiments.validate:EXPERIMENT",
}


def names() -> list[str]:
    return sorted(EXPERIMENTS)


def get(name: str) -> Experiment:
    """The experiment called `name`; UnknownExperimentError listing the known names otherwise."""
    target = EXPERIMENTS.get(name)
    if target is None:
        known = ", ".join(names()) or "(none registered)"
        raise UnknownExperimentError(f"no experiment named {name!r} (known: {known})")
    module_name, _, attr = target.partition(":")
    obj: Experiment | Callable[[], Experiment] = getattr(importlib.import_module(module_name), attr)
    exp = obj if isinstance(obj, Experiment) else obj()
    if exp.name != name:
        raise UnknownExperimentError(f"registry entry {name!r} declares an experiment named {exp.name!r}")
    return exp
