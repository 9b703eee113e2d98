"""sim: the SimPy discrete-event model of image pulls and container starts.

Owns the fluid network (node links, registry egress), registries and mirrors, nodes and their
caches, the four pull strategies, scenarios at cluster scale (cohorts, arrivals, the
machine-config-pool toggle) and the run envelope. Reads scenarios through `startup.scenario_io`
and real TOCs through `imageformat`; emits `startup.record.StartupRecord` rows like the
emulator. Never imports the emulator, the registry mock, aiohttp or FUSE. See docs/model.md.

Entry points: `sim.run.run_scenario(scenario, params=None) -> SimRun`, `sim.run.write_run`.
"""
