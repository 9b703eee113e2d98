"""registry_mock: an aiohttp OCI distribution-spec v1.1 registry that real clients (skopeo, podman) trust.

It owns the HTTP surface (pull, push, tags, referrers, delete), content-addressed storage, RFC 9110
Range serving (single and multipart/byteranges), token auth, the emulated link (bandwidth, latency,
rate and concurrency limits, overload), deterministic faults, Prometheus metrics and a JSON access log.
Start it in-process with `registry_mock.app.start_registry` / `registry_mock.app.running_registry`.
"""
