"""What a container does at startup and what it costs — the vocabulary both engines share.

Owns: `PullMode`, the access `Trace` a workload replays (and its file format), the
`StartupRecord` row that the simulator predicts and the emulator measures, and the pure
metrics over those rows (defined in docs/metrics.md).
"""
