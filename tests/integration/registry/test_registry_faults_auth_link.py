"""Fault modes, token auth, the shaped link (lower bounds and accounting only), metrics, access log, CLI."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from registry_testkit import OCI_MANIFEST, digest_of, push_blob, push_image

from registry_mock.accesslog import read_access_log
from registry_mock.app import RunningRegistry, start_registry
from registry_mock.auth import hash_password
from registry_mock.config import (
    AuthMode,
    AuthSpec,
    FaultKind,
    FaultRule,
    FaultSpec,
    LinkSpec,
    RegistrySpec,
)
from registry_mock.storage import MemoryStorage

DATA = os.urandom(200_000)
LAZYLAB = str(Path(sys.executable).parent / "lazylab")


async def _faulty(tmp_path: Path, *rules: FaultRule, **kw: object) -> tuple[RunningRegistry, str]:
    storage = MemoryStorage()
    plain = await start_registry(RegistrySpec(), storage=storage)
    async with aiohttp.ClientSession() as s:
        d = await push_blob(s, plain.url, "ns/f", DATA)
    await plain.stop()
    spec = RegistrySpec(root=None, faults=FaultSpec(seed=3, rules=rules), **kw)  # type: ignore[arg-type]
    return await start_registry(spec, storage=storage), d


@pytest.mark.parametrize("kind", [FaultKind.RESET, FaultKind.TRUNCATE])
async def test_cut_bodies(tmp_path: Path, http: aiohttp.ClientSession, kind: FaultKind) -> None:
    reg, d = await _faulty(tmp_path, FaultRule(kind=kind, after_bytes=70_000))
    try:
        got = bytearray()
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"{reg.url}/v2/ns/f/blobs/{d}") as r:
                assert r.status == 200 and r.headers["Content-Length"] == str(len(DATA))
                async for chunk in r.content.iter_chunked(8192):
                    got += chunk
        assert len(got) <= 70_000 and bytes(got) == DATA[: len(got)]
        assert reg.records[-1]["faults"] == [kind.value]
    finally:
        await reg.stop()


async def test_corrupt_5xx_slow_and_selectors(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    other = os.urandom(1000)
    reg, d = await _faulty(
        tmp_path,
        FaultRule(kind=FaultKind.CORRUPT, digest=digest_of(DATA)[:20], corrupt_bytes=3),
        FaultRule(kind=FaultKind.ERROR_5XX, repo="ns/broken", status=502),
        FaultRule(kind=FaultKind.SLOW_FIRST_BYTE, repo="ns/slow", delay_s=0.2),
    )
    try:
        od = await push_blob(http, reg.url, "ns/f", other)
        async with http.get(f"{reg.url}/v2/ns/f/blobs/{d}") as r:
            body = await r.read()
        assert len(body) == len(DATA) and sum(a != b for a, b in zip(body, DATA, strict=True)) == 3
        async with http.get(f"{reg.url}/v2/ns/f/blobs/{od}") as r:
            assert await r.read() == other  # the digest selector spares other blobs
        async with http.get(f"{reg.url}/v2/ns/broken/tags/list") as r:
            assert r.status == 502 and (await r.json())["errors"][0]["code"] == "UNAVAILABLE"
        t0 = time.monotonic()
        async with http.get(f"{reg.url}/v2/ns/slow/tags/list") as r:
            assert r.status == 404
        assert time.monotonic() - t0 >= 0.2
        assert 'registry_faults_injected_total{kind="corrupt"} 1' in reg.metrics_text()
    finally:
        await reg.stop()


async def test_range_fault_modes(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    rules = [
        FaultRule(kind=FaultKind.RANGE_IGNORE, repo="ignore"),
        FaultRule(kind=FaultKind.MULTIRANGE_400, repo="single400"),
        FaultRule(kind=FaultKind.RANGE_MERGE, repo="merge"),
        FaultRule(kind=FaultKind.RANGE_416, repo="r416"),
    ]
    reg, d = await _faulty(tmp_path, *rules)
    try:
        for repo in ("ignore", "single400", "merge", "r416"):
            async with http.post(f"{reg.url}/v2/{repo}/blobs/uploads/?mount={d}&from=ns/f") as r:
                assert r.status == 201
        multi = {"Range": "bytes=0-9,10-19,100-109"}
        async with http.get(f"{reg.url}/v2/ignore/blobs/{d}", headers=multi) as r:
            assert r.status == 200 and await r.read() == DATA
        async with http.get(f"{reg.url}/v2/single400/blobs/{d}", headers=multi) as r:
            assert r.status == 400
        async with http.get(f"{reg.url}/v2/single400/blobs/{d}", headers={"Range": "bytes=5-9"}) as r:
            assert r.status == 206 and await r.read() == DATA[5:10]
        async with http.get(f"{reg.url}/v2/merge/blobs/{d}", headers=multi) as r:
            reader = aiohttp.MultipartReader.from_response(r)
            parts = []
            while (p := await reader.next()) is not None:
                parts.append(await p.read())  # type: ignore[union-attr]
            assert parts == [DATA[0:20], DATA[100:110]]  # two parts for three ranges
        async with http.get(f"{reg.url}/v2/r416/blobs/{d}", headers={"Range": "bytes=0-9"}) as r:
            assert r.status == 416
        async with http.get(f"{reg.url}/v2/r416/blobs/{d}") as r:
            assert r.status == 200
    finally:
        await reg.stop()


async def test_redirect_fault(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    reg, d = await _faulty(tmp_path, FaultRule(kind=FaultKind.REDIRECT))
    try:
        async with http.get(f"{reg.url}/v2/ns/f/blobs/{d}", allow_redirects=False) as r:
            assert r.status == 307
            loc = r.headers["Location"]
        assert loc.startswith(f"{reg.url}/_blobs/{d}")
        async with http.head(loc) as r:
            assert r.status == 200 and r.headers["Content-Length"] == str(len(DATA))
        async with http.get(f"{reg.url}/v2/ns/f/blobs/{d}", headers={"Range": "bytes=10-19"}) as r:
            assert r.status == 206 and await r.read() == DATA[10:20]  # followed
    finally:
        await reg.stop()


async def test_rate_limit_429(http: aiohttp.ClientSession) -> None:
    reg = await start_registry(RegistrySpec(link=LinkSpec(rate_limit_per_s=0.5, rate_burst=2)))
    try:
        statuses = []
        for _ in range(3):
            async with http.get(f"{reg.url}/v2/") as r:
                statuses.append(r.status)
                retry = r.headers.get("Retry-After")
        assert statuses == [200, 200, 429] and retry is not None and int(retry) >= 1
    finally:
        await reg.stop()


def _basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


async def test_token_auth_flow(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    users = tmp_path / "users"
    users.write_text(f"# comment\nbob:{hash_password('pw', n=1 << 10)}\n")
    spec = RegistrySpec(auth=AuthSpec(mode=AuthMode.TOKEN, users_file=str(users), allow_anonymous_pull=True))
    reg = await start_registry(spec)
    u = reg.url
    try:
        async with http.get(f"{u}/v2/") as r:
            assert r.status == 401
            ch = r.headers["WWW-Authenticate"]
            assert (
                ch.startswith("Bearer ") and f'realm="{u}/token"' in ch and 'service="lazylab-registry"' in ch
            )
        async with http.get(f"{u}/v2/ns/a/tags/list") as r:
            assert r.status == 401 and 'scope="repository:ns/a:pull"' in r.headers["WWW-Authenticate"]
        async with http.get(f"{u}/token", params=[("scope", "repository:ns/a:pull,push")]) as r:
            anon = (await r.json())["token"]
        async with http.get(f"{u}/v2/", headers={"Authorization": f"Bearer {anon}"}) as r:
            assert r.status == 200
        async with http.post(f"{u}/v2/ns/a/blobs/uploads/", headers={"Authorization": f"Bearer {anon}"}) as r:
            assert r.status == 401 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
        async with http.get(
            f"{u}/token", params={"scope": "repository:ns/a:pull"}, headers=_basic("bob", "no")
        ) as r:
            assert r.status == 401
        async with http.get(
            f"{u}/token",
            params={"scope": "repository:ns/a:pull,push", "account": "bob"},
            headers=_basic("bob", "pw"),
        ) as r:
            body = await r.json()
            assert body["expires_in"] == 300 and body["access_token"] == body["token"]
        bearer = {"Authorization": f"Bearer {body['token']}"}
        await push_image(http, u, "ns/a", "v1", b"layer", headers=bearer)
        async with http.get(f"{u}/v2/ns/a/manifests/v1", headers={"Authorization": f"Bearer {anon}"}) as r:
            assert r.status == 200  # anonymous pull-only token
        async with http.get(f"{u}/v2/ns/other/tags/list", headers=bearer) as r:
            assert r.status == 401 and "insufficient_scope" in r.headers["WWW-Authenticate"]
        tampered = body["token"][:-2] + ("AA" if not body["token"].endswith("AA") else "BB")
        async with http.get(f"{u}/v2/", headers={"Authorization": f"Bearer {tampered}"}) as r:
            assert r.status == 401
    finally:
        await reg.stop()


async def test_expired_tokens_and_no_anonymous(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    users = tmp_path / "users"
    users.write_text(f"bob:{hash_password('pw', n=1 << 10)}\n")
    spec = RegistrySpec(auth=AuthSpec(mode=AuthMode.TOKEN, users_file=str(users), token_ttl_s=0.05))
    reg = await start_registry(spec)
    try:
        async with http.get(f"{reg.url}/token", params={"scope": "repository:ns/a:pull"}) as r:
            anon = (await r.json())["token"]
        async with http.get(f"{reg.url}/v2/ns/a/tags/list", headers={"Authorization": f"Bearer {anon}"}) as r:
            assert r.status == 401  # anonymous pull not allowed: empty grant
        async with http.get(
            f"{reg.url}/token", params={"scope": "repository:ns/a:pull"}, headers=_basic("bob", "pw")
        ) as r:
            tok = (await r.json())["token"]
        await asyncio.sleep(0.1)
        async with http.get(f"{reg.url}/v2/", headers={"Authorization": f"Bearer {tok}"}) as r:
            assert r.status == 401
    finally:
        await reg.stop()


async def test_shaped_link_lower_bounds_and_accounting(http: aiohttp.ClientSession) -> None:
    rate = 2e6  # bytes/s
    spec = RegistrySpec(
        link=LinkSpec(bandwidth_bytes_per_s=rate, egress_bandwidth_bytes_per_s=rate, latency_s=0.05)
    )
    reg = await start_registry(spec)
    try:
        data = os.urandom(400_000)
        t0 = time.monotonic()
        d = await push_blob(http, reg.url, "ns/s", data)
        assert time.monotonic() - t0 >= 0.05  # added latency
        t0 = time.monotonic()
        async with http.get(f"{reg.url}/v2/ns/s/blobs/{d}") as r:
            assert await r.read() == data
        assert time.monotonic() - t0 >= len(data) / rate * 0.8 + 0.05
        paced_before = reg.state.link.stats.bytes_paced
        assert paced_before >= len(data)
        t0 = time.monotonic()

        async def get() -> bytes:
            async with http.get(f"{reg.url}/v2/ns/s/blobs/{d}") as r:
                return await r.read()

        assert await asyncio.gather(get(), get()) == [data, data]
        assert time.monotonic() - t0 >= 2 * len(data) / rate * 0.8  # two transfers share the egress
        assert reg.state.link.stats.bytes_paced - paced_before == 2 * len(data)
        assert reg.state.link.active == 0
    finally:
        await reg.stop()


async def test_metrics_and_access_log_file(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    log = tmp_path / "access.jsonl"
    reg = await start_registry(RegistrySpec(access_log=str(log)))
    try:
        d = await push_blob(http, reg.url, "ns/m", DATA)
        async with http.get(f"{reg.url}/v2/ns/m/blobs/{d}", headers={"Range": "bytes=0-9,20-29"}) as r:
            await r.read()
        async with http.get(f"{reg.url}/metrics") as r:
            text = await r.text()
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    finally:
        await reg.stop()
    assert 'registry_requests_total{endpoint="blob",method="GET",status="206"} 1' in text
    assert 'registry_ranges_per_request_bucket{le="2"} 1' in text
    assert "registry_active_transfers 0" in text
    assert 'registry_bytes_served_total{endpoint="blob"}' in text
    recs = read_access_log(log)
    get = next(r for r in recs if r["method"] == "GET" and r["endpoint"] == "blob")
    assert get["status"] == 206 and get["ranges"] == 2 and get["repo"] == "ns/m" and get["digest"] == d
    assert get["bytes_sent"] > 20 and get["duration_s"] >= 0
    assert {"ts", "method", "path", "status", "ranges", "bytes_sent", "duration_s", "repo", "digest"} <= set(
        get
    )


def _lazylab(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from lazylab.cli import main

    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_serve_import_adduser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(
        [
            LAZYLAB,
            "registry",
            "serve",
            "--port",
            "0",
            "--root",
            str(root),
            "--access-log",
            str(log),
            "--latency",
            "1ms",
            "--bandwidth",
            "1Gbit",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/v2/") as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert read_access_log(log)[0]["path"] == "/v2/"

    status, _, err = _lazylab(capsys, "registry", "serve", "--bandwidth", "lots")
    assert status == 2 and err.count("\n") == 1 and "lots" in err

    users = tmp_path / "users"
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    status, _, _ = _lazylab(capsys, "registry", "adduser", str(users), "carol", "--password-stdin")
    assert status == 0 and users.read_text().startswith("carol:scrypt$")

    layout = tmp_path / "oci"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    cfg = b"{}"
    (layout / "blobs" / "sha256" / digest_of(cfg)[7:]).write_bytes(cfg)
    man = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(cfg),
                "size": 2,
            },
            "layers": [],
        }
    ).encode()
    (layout / "blobs" / "sha256" / digest_of(man)[7:]).write_bytes(man)
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": digest_of(man),
                        "size": len(man),
                        "annotations": {"org.opencontainers.image.ref.name": "v1"},
                    }
                ],
            }
        )
    )
    status, out, _ = _lazylab(capsys, "registry", "import", str(layout), "ns/imp:v1", "--root", str(root))
    assert status == 0 and digest_of(man) in out
    status, _, err = _lazylab(
        capsys, "registry", "import", str(tmp_path / "nothing"), "ns/imp:v2", "--root", str(root)
    )
    assert status == 2 and "index.json" in err and err.count("\n") == 1


async def test_redirect_with_auth_is_signed(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    users = tmp_path / "users"
    users.write_text(f"bob:{hash_password('pw', n=1 << 10)}\n")
    storage = MemoryStorage()
    d = storage.put_blob_bytes(DATA)
    storage.link_blob("ns/r", d)
    spec = RegistrySpec(
        auth=AuthSpec(mode=AuthMode.TOKEN, users_file=str(users)),
        faults=FaultSpec(rules=(FaultRule(kind=FaultKind.REDIRECT),)),
    )
    reg = await start_registry(spec, storage=storage)
    try:
        async with http.get(
            f"{reg.url}/token", params={"scope": "repository:ns/r:pull"}, headers=_basic("bob", "pw")
        ) as r:
            tok = (await r.json())["token"]
        async with http.get(
            f"{reg.url}/v2/ns/r/blobs/{d}", allow_redirects=False, headers={"Authorization": f"Bearer {tok}"}
        ) as r:
            assert r.status == 307
            loc = r.headers["Location"]
        assert "sig=" in loc
        async with http.get(loc, headers={"Range": "bytes=0-99"}) as r:  # no auth header needed
            assert r.status == 206 and await r.read() == DATA[:100]
        async with http.get(f"{reg.url}/_blobs/{d}") as r:  # unsigned
            assert r.status == 403
        async with http.get(loc.replace("sig=", "sig=x")) as r:
            assert r.status == 403
    finally:
        await reg.stop()


async def test_reconfigure_link_and_faults_at_runtime(http: aiohttp.ClientSession) -> None:
    reg = await start_registry(RegistrySpec())
    try:
        d = await push_blob(http, reg.url, "ns/rc", DATA)
        reg.set_faults(FaultSpec(rules=(FaultRule(kind=FaultKind.RANGE_416),)))
        async with http.get(f"{reg.url}/v2/ns/rc/blobs/{d}", headers={"Range": "bytes=0-1"}) as r:
            assert r.status == 416
        reg.set_faults(FaultSpec())
        reg.set_link(LinkSpec(bandwidth_bytes_per_s=4e6))
        async with http.get(f"{reg.url}/v2/ns/rc/blobs/{d}", headers={"Range": "bytes=0-1"}) as r:
            assert r.status == 206
        assert reg.state.link.stats.bytes_paced == 2
    finally:
        await reg.stop()


@pytest.mark.parametrize("shaped", [False, True])
async def test_client_hanging_up_mid_body_is_499(
    tmp_path: Path, http: aiohttp.ClientSession, shaped: bool
) -> None:
    link = LinkSpec(bandwidth_bytes_per_s=100e6) if shaped else LinkSpec()
    reg = await start_registry(RegistrySpec(root=str(tmp_path / "root"), link=link))
    try:
        big = os.urandom(16 << 20)
        d = await push_blob(http, reg.url, "ns/hang", big)
        reader, writer = await asyncio.open_connection(reg.host, reg.port)
        writer.write(f"GET /v2/ns/hang/blobs/{d} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await reader.readexactly(65536)
        writer.transport.abort()
        for _ in range(200):
            if reg.records[-1]["method"] == "GET":
                break
            await asyncio.sleep(0.01)
        assert reg.records[-1]["status"] == 499
        assert reg.state.link.active == 0
        async with http.get(f"{reg.url}/v2/ns/hang/blobs/{d}") as r:
            assert await r.read() == big
    finally:
        await reg.stop()
