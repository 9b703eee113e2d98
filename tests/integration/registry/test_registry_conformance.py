"""OCI distribution-spec v1.1 flows (the conformance suite's checks, registry.md §4.1/§4.2/§6.2) over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
from registry_testkit import OCI_MANIFEST, digest_of, image_manifest, push_blob, push_image

from registry_mock.app import RunningRegistry, start_registry
from registry_mock.config import RegistrySpec
from registry_mock.importer import import_oci_layout


async def _error_code(r: aiohttp.ClientResponse) -> str:
    body = await r.json(content_type=None)
    return str(body["errors"][0]["code"])


async def test_base_and_unknowns(registry: RunningRegistry, http: aiohttp.ClientSession) -> None:
    u = registry.url
    async with http.get(f"{u}/v2/") as r:
        assert r.status == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    async with http.get(f"{u}/v2/ns/app/manifests/.INVALID_MANIFEST_NAME") as r:
        assert r.status == 404 and await _error_code(r) == "MANIFEST_UNKNOWN"
    async with http.head(f"{u}/v2/ns/app/manifests/.INVALID_MANIFEST_NAME") as r:
        assert r.status == 404
    async with http.get(f"{u}/v2/ns/app/manifests/sha256:totallywrong") as r:
        assert r.status == 404
    async with http.get(f"{u}/v2/ns/app/blobs/sha256:{'0' * 64}") as r:
        assert r.status == 404 and await _error_code(r) == "BLOB_UNKNOWN"
    async with http.get(f"{u}/v2/ns/app/blobs/md5:abc") as r:
        assert r.status == 400 and await _error_code(r) == "DIGEST_INVALID"
    async with http.get(f"{u}/v2/NS/app/tags/list") as r:
        assert r.status == 400 and await _error_code(r) == "NAME_INVALID"
    async with http.get(f"{u}/v2/ns/app/tags/list") as r:
        assert r.status == 404 and await _error_code(r) == "NAME_UNKNOWN"


async def test_streamed_chunked_and_monolithic_uploads(
    registry: RunningRegistry, http: aiohttp.ClientSession
) -> None:
    u = registry.url
    data = os.urandom(300_000)
    d = digest_of(data)
    # streamed PATCH without Content-Range (containers/image), chunked transfer-encoding
    async with http.post(f"{u}/v2/ns/a/blobs/uploads/") as r:
        assert r.status == 202 and r.headers["Range"] == "0-0" and r.headers["Docker-Upload-UUID"]
        loc = r.headers["Location"]

    async def gen():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    async with http.patch(u + loc, data=gen()) as r:
        assert r.status == 202 and r.headers["Range"] == f"0-{len(data) - 1}"
    async with http.put(u + loc + f"?digest={d}") as r:
        assert r.status == 201 and r.headers["Location"] == f"/v2/ns/a/blobs/{d}"
        assert r.headers["Docker-Content-Digest"] == d
    async with http.get(f"{u}/v2/ns/a/blobs/{d}") as r:
        assert await r.read() == data

    # chunked with Content-Range; out-of-order and duplicate chunks are 416; status GET recovers
    data2 = os.urandom(5000)
    d2 = digest_of(data2)
    async with http.post(f"{u}/v2/ns/a/blobs/uploads/") as r:
        loc = r.headers["Location"]
    async with http.patch(u + loc, data=data2[:2000], headers={"Content-Range": "0-1999"}) as r:
        assert r.status == 202 and r.headers["Range"] == "0-1999"
    async with http.patch(u + loc, data=data2[3000:4000], headers={"Content-Range": "3000-3999"}) as r:
        assert r.status == 416
    async with http.patch(u + loc, data=data2[:2000], headers={"Content-Range": "0-1999"}) as r:
        assert r.status == 416
    async with http.patch(u + loc, data=data2[2000:2100], headers={"Content-Range": "2000-2999"}) as r:
        assert r.status == 400 and await _error_code(r) == "SIZE_INVALID"
    async with http.get(u + loc) as r:
        assert r.status == 204 and r.headers["Range"] == "0-1999" and r.headers["Location"] == loc
    async with http.patch(
        u + loc, data=data2[2000:4000], headers={"Content-Range": "bytes 2000-3999/*"}
    ) as r:
        assert r.status == 202
    async with http.put(
        u + loc + f"?digest={d2}", data=data2[4000:], headers={"Content-Range": "4000-4999"}
    ) as r:
        assert r.status == 201
    async with http.get(f"{u}/v2/ns/a/blobs/{d2}") as r:
        assert await r.read() == data2

    # monolithic POST ?digest= and a digest mismatch (nothing stored)
    await push_blob(http, u, "ns/a", b"mono")
    async with http.post(f"{u}/v2/ns/a/blobs/uploads/") as r:
        loc = r.headers["Location"]
    bad = digest_of(b"other")
    async with http.put(u + loc + f"?digest={bad}", data=b"actual") as r:
        assert r.status == 400 and await _error_code(r) == "DIGEST_INVALID"
    async with http.get(u + loc) as r:
        assert r.status == 404  # session discarded
    async with http.head(f"{u}/v2/ns/a/blobs/{bad}") as r:
        assert r.status == 404
    async with http.put(u + loc + "?digest=") as r:
        assert r.status in (400, 404)
    # cancel
    async with http.post(f"{u}/v2/ns/a/blobs/uploads/") as r:
        loc = r.headers["Location"]
    async with http.delete(u + loc) as r:
        assert r.status == 204
    async with http.get(u + loc) as r:
        assert r.status == 404 and await _error_code(r) == "BLOB_UPLOAD_UNKNOWN"


async def test_head_get_parity_and_repo_scoping(
    registry: RunningRegistry, http: aiohttp.ClientSession
) -> None:
    u = registry.url
    data = os.urandom(1234)
    d = await push_blob(http, u, "ns/one", data)
    async with http.head(f"{u}/v2/ns/one/blobs/{d}") as h, http.get(f"{u}/v2/ns/one/blobs/{d}") as g:
        assert h.status == g.status == 200
        for k in ("Content-Length", "Docker-Content-Digest", "Content-Type", "Accept-Ranges", "ETag"):
            assert h.headers[k] == g.headers[k], k
        assert h.headers["Content-Length"] == "1234"
    async with http.get(f"{u}/v2/ns/two/blobs/{d}") as r:
        assert r.status == 404  # exists globally, not linked into ns/two
    # mount: without from -> 202 session; with from -> 201 exact relative Location
    async with http.post(f"{u}/v2/ns/two/blobs/uploads/?mount={d}") as r:
        assert r.status == 202
    async with http.post(f"{u}/v2/ns/two/blobs/uploads/?mount={d}&from=ns/one") as r:
        assert r.status == 201 and r.headers["Location"] == f"/v2/ns/two/blobs/{d}"
    async with http.get(f"{u}/v2/ns/two/blobs/{d}") as r:
        assert await r.read() == data
    async with http.post(f"{u}/v2/ns/three/blobs/uploads/?mount={d}&from=ns/nothing") as r:
        assert r.status == 202
    async with http.delete(f"{u}/v2/ns/two/blobs/{d}") as r:
        assert r.status == 202
    async with http.get(f"{u}/v2/ns/two/blobs/{d}") as r:
        assert r.status == 404
    async with http.get(f"{u}/v2/ns/one/blobs/{d}") as r:
        assert r.status == 200


async def test_manifests_tags_referrers_delete(
    registry: RunningRegistry, http: aiohttp.ClientSession
) -> None:
    u = registry.url
    md, _ = await push_image(http, u, "ns/m", "v1", os.urandom(100))
    async with http.get(f"{u}/v2/ns/m/manifests/v1") as r:
        body = await r.read()
        assert r.headers["Content-Type"] == OCI_MANIFEST and digest_of(body) == md
        assert r.headers["Docker-Content-Digest"] == md
    async with http.head(f"{u}/v2/ns/m/manifests/{md}") as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(len(body))
    async with http.get(f"{u}/v2/ns/m/manifests/v1", headers={"Range": "bytes=0-3"}) as r:
        assert r.status == 200  # Range ignored on manifests
    for t in ("b", "a", "c", "B"):
        async with http.put(
            f"{u}/v2/ns/m/manifests/{t}", data=body, headers={"Content-Type": OCI_MANIFEST}
        ) as r:
            assert r.status == 201
    async with http.get(f"{u}/v2/ns/m/tags/list") as r:
        assert (await r.json())["tags"] == ["B", "a", "b", "c", "v1"]  # byte-wise
    async with http.get(f"{u}/v2/ns/m/tags/list?n=2") as r:
        assert (await r.json())["tags"] == ["B", "a"]
        assert r.headers["Link"] == '</v2/ns/m/tags/list?n=2&last=a>; rel="next"'
    async with http.get(f"{u}/v2/ns/m/tags/list?n=2&last=a") as r:
        assert (await r.json())["tags"] == ["b", "c"]
    async with http.get(f"{u}/v2/ns/m/tags/list?n=0") as r:
        assert (await r.json())["tags"] == [] and "Link" not in r.headers
    async with http.get(f"{u}/v2/ns/m/tags/list?last=zzz") as r:
        assert (await r.json())["tags"] == []

    # invalid manifests
    async with http.put(
        f"{u}/v2/ns/m/manifests/x", data=b"{nope", headers={"Content-Type": OCI_MANIFEST}
    ) as r:
        assert r.status == 400 and await _error_code(r) == "MANIFEST_INVALID"
    missing = image_manifest(digest_of(b"nope"), 4, [])
    async with http.put(
        f"{u}/v2/ns/m/manifests/x", data=missing, headers={"Content-Type": OCI_MANIFEST}
    ) as r:
        assert r.status == 400 and await _error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    async with http.put(
        f"{u}/v2/ns/m/manifests/{digest_of(b'x')}", data=body, headers={"Content-Type": OCI_MANIFEST}
    ) as r:
        assert r.status == 400 and await _error_code(r) == "DIGEST_INVALID"
    async with http.put(
        f"{u}/v2/ns/m/manifests/x",
        data=body,
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
    ) as r:
        assert r.status == 400
    async with http.put(
        f"{u}/v2/ns/m/manifests/x", data=b"{}" + b" " * (5 << 20), headers={"Content-Type": OCI_MANIFEST}
    ) as r:
        assert r.status == 413

    # referrers: a subject push answers OCI-Subject; filter by artifactType
    doc = json.loads(body)
    for i, at in enumerate(["application/x-sig", "application/x-sbom", "application/x-sig"]):
        ref = dict(
            doc,
            subject={"mediaType": OCI_MANIFEST, "digest": md, "size": len(body)},
            artifactType=at,
            annotations={"n": str(i)},
        )
        async with http.put(
            f"{u}/v2/ns/m/manifests/ref{i}",
            data=json.dumps(ref).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        ) as r:
            assert r.status == 201 and r.headers["OCI-Subject"] == md
    async with http.get(f"{u}/v2/ns/m/referrers/{md}") as r:
        idx = await r.json(content_type=None)
        assert r.headers["Content-Type"].startswith("application/vnd.oci.image.index.v1+json")
        assert len(idx["manifests"]) == 3
    async with http.get(f"{u}/v2/ns/m/referrers/{md}?artifactType=application/x-sig") as r:
        assert len((await r.json(content_type=None))["manifests"]) == 2
        assert r.headers["OCI-Filters-Applied"] == "artifactType"
    async with http.get(f"{u}/v2/ns/m/referrers/{digest_of(b'none')}") as r:
        assert r.status == 200 and (await r.json(content_type=None))["manifests"] == []

    # delete by tag removes only the tag; by digest removes all its tags
    async with http.delete(f"{u}/v2/ns/m/manifests/a") as r:
        assert r.status == 202
    async with http.get(f"{u}/v2/ns/m/manifests/a") as r:
        assert r.status == 404
    async with http.get(f"{u}/v2/ns/m/manifests/b") as r:
        assert r.status == 200
    async with http.delete(f"{u}/v2/ns/m/manifests/{md}") as r:
        assert r.status == 202
    async with http.get(f"{u}/v2/ns/m/tags/list") as r:
        assert (await r.json())["tags"] == ["ref0", "ref1", "ref2"]
    async with http.delete(f"{u}/v2/ns/m/manifests/{md}") as r:
        assert r.status == 404
    async with http.get(f"{u}/v2/_catalog") as r:
        assert "ns/m" in (await r.json())["repositories"]


async def test_range_matrix_end_to_end(registry: RunningRegistry, http: aiohttp.ClientSession) -> None:
    u = registry.url
    data = os.urandom(2048)
    d = await push_blob(http, u, "ns/r", data)
    blob = f"{u}/v2/ns/r/blobs/{d}"
    cases = [
        ("bytes=500-1499", 206, "bytes 500-1499/2048", data[500:1500]),
        ("bytes=500-", 206, "bytes 500-2047/2048", data[500:]),
        ("bytes=-500", 206, "bytes 1548-2047/2048", data[1548:]),
        ("bytes=2000-5000", 206, "bytes 2000-2047/2048", data[2000:]),
        ("bytes=500-0", 416, "bytes */2048", b""),
        ("bytes=5000-10000", 416, "bytes */2048", b""),
    ]
    for header, status, cr, body in cases:
        async with http.get(blob, headers={"Range": header}) as r:
            assert r.status == status, header
            assert r.headers["Content-Range"] == cr
            if status == 206:
                assert await r.read() == body and r.headers["Content-Length"] == str(len(body))
    async with http.head(blob, headers={"Range": "bytes=0-9"}) as r:
        assert r.status == 200 and r.headers["Content-Length"] == "2048"
    async with http.get(blob, headers={"Range": "bytes=0-9", "If-Range": f'"{d}"'}) as r:
        assert r.status == 206
    async with http.get(blob, headers={"Range": "bytes=0-9", "If-Range": '"sha256:x"'}) as r:
        assert r.status == 200 and await r.read() == data
    # multipart: one part per range, request order, adjacent not merged
    async with http.get(blob, headers={"Range": "bytes=100-199,0-9,10-19"}) as r:
        assert r.status == 206 and r.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
        reader = aiohttp.MultipartReader.from_response(r)
        got = []
        while (part := await reader.next()) is not None:
            got.append((part.headers["Content-Range"], await part.read()))  # type: ignore[union-attr]
        assert got == [
            ("bytes 100-199/2048", data[100:200]),
            ("bytes 0-9/2048", data[:10]),
            ("bytes 10-19/2048", data[10:20]),
        ]


async def test_thousand_ranges_in_a_big_header(
    registry: RunningRegistry, http: aiohttp.ClientSession
) -> None:
    u = registry.url
    data = os.urandom(3_000_000)
    d = await push_blob(http, u, "ns/big", data)
    for n, status in ((1024, 206), (1025, 400)):
        starts = [i * 2900 for i in range(n)]
        header = "bytes=" + ",".join(f"{s}-{s + 9}" for s in starts)
        assert len(header) > 8190
        async with http.get(f"{u}/v2/ns/big/blobs/{d}", headers={"Range": header}) as r:
            assert r.status == status
            if status == 206:
                reader = aiohttp.MultipartReader.from_response(r)
                count = 0
                while (part := await reader.next()) is not None:
                    assert await part.read() == data[starts[count] : starts[count] + 10]  # type: ignore[union-attr]
                    count += 1
                assert count == n
    spec2048 = RegistrySpec(max_ranges=2048)
    reg = await start_registry(spec2048, storage=registry.state.storage)
    try:
        header = "bytes=" + ",".join(f"{i * 1000}-{i * 1000 + 4}" for i in range(2048))
        assert len(header) > 20_000
        async with http.get(f"{reg.url}/v2/ns/big/blobs/{d}", headers={"Range": header}) as r:
            assert r.status == 206
            await r.read()
    finally:
        await reg.stop()


async def test_disk_storage_survives_restart_and_concurrent_pushes(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    spec = RegistrySpec(root=str(tmp_path / "root"))
    reg = await start_registry(spec)
    data = os.urandom(200_000)
    try:
        results = await asyncio.gather(*[push_blob(http, reg.url, "ns/c", data) for _ in range(6)])
        assert len(set(results)) == 1
        md, ld = await push_image(http, reg.url, "ns/c", "v1", data)
    finally:
        await reg.stop()
    assert not list((tmp_path / "root" / "uploads").iterdir())
    reg = await start_registry(spec)
    try:
        async with http.get(f"{reg.url}/v2/ns/c/manifests/v1") as r:
            assert r.status == 200 and r.headers["Docker-Content-Digest"] == md
        async with http.get(f"{reg.url}/v2/ns/c/blobs/{ld}") as r:
            assert await r.read() == data
        async with http.get(f"{reg.url}/v2/ns/c/blobs/{ld}", headers={"Range": "bytes=5-9,100-104"}) as r:
            assert r.status == 206
    finally:
        await reg.stop()


async def test_large_streamed_upload_and_full_get(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    reg = await start_registry(RegistrySpec(root=str(tmp_path / "root")))
    try:
        chunk = os.urandom(1 << 20)
        n = 32
        import hashlib

        h = hashlib.sha256()
        for _ in range(n):
            h.update(chunk)
        d = "sha256:" + h.hexdigest()

        async def gen():  # type: ignore[no-untyped-def]
            for _ in range(n):
                yield chunk

        async with http.post(f"{reg.url}/v2/ns/l/blobs/uploads/") as r:
            loc = r.headers["Location"]
        async with http.patch(reg.url + loc, data=gen()) as r:
            assert r.status == 202
        async with http.put(reg.url + loc + f"?digest={d}") as r:
            assert r.status == 201
        got = hashlib.sha256()
        async with http.get(f"{reg.url}/v2/ns/l/blobs/{d}") as r:
            async for part in r.content.iter_chunked(1 << 20):
                got.update(part)
        assert "sha256:" + got.hexdigest() == d
    finally:
        await reg.stop()


async def test_import_oci_layout(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    import hashlib

    layout = tmp_path / "oci"
    (layout / "blobs" / "sha256").mkdir(parents=True)

    def put(b: bytes) -> str:
        (layout / "blobs" / "sha256" / hashlib.sha256(b).hexdigest()).write_bytes(b)
        return digest_of(b)

    layer = os.urandom(1000)
    cfg = b'{"os":"linux"}'
    man = image_manifest(put(cfg), len(cfg), [(put(layer), len(layer))])
    md = put(man)
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": md,
                        "size": len(man),
                        "annotations": {"org.opencontainers.image.ref.name": "latest"},
                    }
                ],
            }
        )
    )
    root = tmp_path / "root"
    assert import_oci_layout(layout, "ns/imp", "latest", root) == md
    reg = await start_registry(RegistrySpec(root=str(root)))
    try:
        async with http.get(f"{reg.url}/v2/ns/imp/manifests/latest") as r:
            assert await r.read() == man
        async with http.get(f"{reg.url}/v2/ns/imp/blobs/{digest_of(layer)}") as r:
            assert await r.read() == layer
    finally:
        await reg.stop()
