"""The emulator: containers' startup run for real on this machine, over HTTP.

Owns: the registry client (any OCI registry), the lazy store (TOC-driven on-demand fetch,
caches, prefetch, background fetch), the full/partial/lazy/lazy-prefetch pull modes, trace
replay and recording, emulated nodes and clusters, and the FUSE adapter (`emulator.fuse`)
that exposes a read-only `FileSystemView` to the kernel.

Entry points (see each module's docstring):
- `emulator.lazyview.open_lazy_view(ref, LazyOptions) -> OpenedView(view, close)`: a blocking,
  thread-safe `FileSystemView` over a lazily pulled image (the store runs on its own loop thread).
- `emulator.lazyview.open_store(client, ref, cache=...) -> LazyStore`: the async store itself.
- `emulator.modes.run_start(node, ref, StartSpec) -> StartupRecord` on an `emulator.node.EmulatedNode`.
- `emulator.cluster.run_cluster(scenario, refs, traces, work_dir) -> ClusterResult`.
- `emulator.recorder`: the injected `Recorder` of timed operations (range_get, blob_get, decode,
  extract, toc_fetch) that calibration fits.
Modules: reference, client, ranges, tocfetch, store, overlay, cache, counters, prefetch,
lazyview, replay, rootview, extract, node, modes, cluster, synthbuild, recorder, errors.
"""
