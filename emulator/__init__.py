"""The emulator: containers' startup run for real on this machine, over HTTP.

Owns: the registry client (any OCI registry), the lazy store (TOC-driven on-demand fetch,
caches, prefetch, background fetch), the full/partial/lazy/lazy-prefetch pull modes, trace
replay and recording, emulated nodes and clusters, and the FUSE adapter (`emulator.fuse`)
that exposes a read-only `FileSystemView` to the kernel.
"""
