"""registry_mock: an aiohttp OCI distribution-spec v1.1 registry that real clients (skopeo, podman) trust.

It owns the HTTP surface (pull, push, tags, referrers, delete), content-addressed storage, RFC 9110
Range serving (single and multipart/byteranges), token auth, the emulated link (bandwidth, latency,
rate and concurrency limits, overload), deterministic faults, Prometheus metrics and a JSON access log.

In-process use (tests, the emulator):

    from registry_mock.app import start_registry, running_registry
    from registry_mock.config import RegistrySpec, LinkSpec, FaultSpec, FaultRule, FaultKind
    spec = RegistrySpec(root=None,                      # None: MemoryStorage; a path: DiskStorage
                        link=LinkSpec(bandwidth_bytes_per_s=12.5e6, latency_s=0.02),
                        faults=FaultSpec(seed=1, rules=(FaultRule(kind=FaultKind.RANGE_IGNORE,
                                                                   repo="ns/*"),)))
    reg = await start_registry(spec)          # reg.url, reg.address, reg.records, reg.metrics_text()
    await reg.stop()                          # or: async with await start_registry(spec) as reg: ...
    with running_registry(spec) as reg: ...   # sync callers: background thread + loop, same attributes

Seed content without HTTP: `registry_mock.importer.import_oci_layout(oci_dir, repo, tag, root_or_storage)`.
Modules: app (routes, pipeline, start API), routes, blobs, manifests, uploads, tags, ranges, transfer,
shaping, faults, auth, storage/disk, config, errors, names, metrics, accesslog, importer, state.
"""
