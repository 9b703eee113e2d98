"""Exceptions of the experiments package, one per failure class.

Every class derives from `ExperimentError`, which the `lazylab experiment` command registers as a
user error (printed as one line, no traceback).
"""

from __future__ import annotations


class ExperimentError(Exception):
    """Base class: something about an experiment, its config or its results is wrong."""


class ConfigError(ExperimentError, ValueError):
    """An experiment's base config or factors are malformed (bad dotted key, non-TOML value...)."""


class UnknownExperimentError(ExperimentError, KeyError):
    """No experiment of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CalibrationError(ExperimentError, ValueError):
    """A calibration params file or a set of measurements cannot be used (missing, malformed, too few)."""


class ResultsError(ExperimentError):
    """Cached results are missing or unreadable where a report needs them."""
