"""experiments: declared studies (base config x factors x seeds) run on either engine, cached, reported.

Owns the framework (framework.py: Experiment, RunTask, RunResult; config.py: dotted keys and
factor expansion; cache.py: results/<experiment>/<key>/; executor.py: local pool or Dask;
stats.py; report.py; registry.py: experiments by name) and the calibration fit
(calibration.py). Engines plug in through run functions `(config, seed, calibration) -> records`.
See docs/experiments.md and ../shared/design.md.
"""
