"""Real clients against registry_mock (registry.md §6.3): skopeo 1.9.3 pushes, inspects, copies back,
mounts across repositories and deletes; podman 4.3.1 pulls, including a zstd:chunked partial pull; token
auth with both; podman's fallback when the registry mishandles Range.

Every test uses fresh random content (containers/image keeps a blob-info cache across runs) and an
isolated podman storage (CONTAINERS_STORAGE_CONF in a tmp dir). Registries listen on 127.0.0.1:<free>.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry_mock.app import ThreadedRegistry, running_registry
from registry_mock.auth import hash_password
from registry_mock.config import AuthMode, AuthSpec, FaultKind, FaultRule, FaultSpec, RegistrySpec
from tests.helpers import require_tool

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


# ---------------------------------------------------------------- building OCI layouts


@dataclasses.dataclass
class Layout:
    path: Path
    tag: str
    files: dict[str, bytes]
    manifest_digest: str
    manifest_bytes: bytes

    @property
    def ref(self) -> str:
        return f"oci:{self.path}:{self.tag}"


def _put(layout: Path, data: bytes) -> str:
    hexd = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexd).write_bytes(data)
    return "sha256:" + hexd


def build_gzip_layout(path: Path, tag: str = "v1", n_files: int = 40, file_bytes: int = 3000) -> Layout:
    """A one-layer OCI image of random files (half random, half compressible) with a gzip layer."""
    (path / "blobs" / "sha256").mkdir(parents=True)
    files: dict[str, bytes] = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo("data")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        for i in range(n_files):
            data = os.urandom(file_bytes // 2) + bytes([i % 251]) * (file_bytes - file_bytes // 2)
            name = f"data/f{i:05d}"
            files[name] = data
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))
    tar = buf.getvalue()
    layer = gzip.compress(tar, mtime=0)
    layer_digest = _put(path, layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        }
    ).encode()
    config_digest = _put(path, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    manifest_digest = _put(path, manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": manifest_digest,
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": tag},
                    }
                ],
            }
        )
    )
    return Layout(path, tag, files, manifest_digest, manifest)


def read_layout_manifest(path: Path, tag: str) -> tuple[str, bytes]:
    index = json.loads((path / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            data = (path / "blobs" / "sha256" / m["digest"].split(":")[1]).read_bytes()
            return m["digest"], data
    raise AssertionError(f"{tag} not in {path}")


# ---------------------------------------------------------------- running tools


def run(
    args: list[str], env: dict[str, str] | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def tools_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Isolated auth file and podman storage (overlay, partial pulls enabled)."""
    require_tool("skopeo")
    require_tool("podman")
    pod = tmp_path / "podman"
    pod.mkdir()
    conf = pod / "storage.conf"
    conf.write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{pod}/graph"\n'
        f'runroot = "{pod}/run"\n'
        "[storage.options]\n"
        'pull_options = {enable_partial_images = "true", use_hard_links = "false", ostree_repos = ""}\n'
    )
    auth = tmp_path / "auth.json"
    auth.write_text("{}")
    env = {"CONTAINERS_STORAGE_CONF": str(conf), "REGISTRY_AUTH_FILE": str(auth)}
    yield env
    images = run(["podman", "images", "-q"], env, check=False).stdout.split()
    for img in images:
        run(["podman", "image", "unmount", "-f", img], env, check=False)
    run(["podman", "rmi", "-a", "-f"], env, check=False)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ThreadedRegistry]:
    with running_registry(RegistrySpec(root=str(tmp_path / "root"))) as reg:
        yield reg


def mounted_files(env: dict[str, str], image: str, names: list[str]) -> dict[str, bytes]:
    """Contents of `names` inside a pulled image, read through `podman image mount`."""
    mnt = run(["podman", "image", "mount", image], env).stdout.strip()
    try:
        return {n: (Path(mnt) / n).read_bytes() for n in names}
    finally:
        run(["podman", "image", "unmount", image], env, check=False)


def blob_requests(reg: ThreadedRegistry, digest: str) -> list[dict[str, object]]:
    return [
        r for r in reg.records if r["endpoint"] == "blob" and r["digest"] == digest and r["method"] == "GET"
    ]


def zstd_chunked_copy(src: Layout, dst: Path, env: dict[str, str]) -> tuple[str, bytes]:
    run(["skopeo", "copy", "--dest-compress-format", "zstd:chunked", src.ref, f"oci:{dst}:{src.tag}"], env)
    return read_layout_manifest(dst, src.tag)


# ---------------------------------------------------------------- tests


def test_skopeo_push_inspect_copy_mount_delete(
    registry: ThreadedRegistry, tools_env: dict[str, str], tmp_path: Path
) -> None:
    src = build_gzip_layout(tmp_path / "src")
    host = registry.address
    ref = f"docker://{host}/ns/app:v1"
    run(["skopeo", "copy", "--dest-tls-verify=false", src.ref, ref], tools_env)

    # Push flow per blob: HEAD 404, POST 202, PATCH 202 without Content-Range, PUT ?digest= 201.
    recs = registry.records
    layer = json.loads(src.manifest_bytes)["layers"][0]["digest"]
    seq = [
        (r["method"], r["status"])
        for r in recs
        if r["digest"] == layer or (r["endpoint"] in ("upload_start", "upload") and r["repo"] == "ns/app")
    ]
    assert ("HEAD", 404) in seq and ("POST", 202) in seq and ("PATCH", 202) in seq and ("PUT", 201) in seq
    assert any(r["endpoint"] == "manifest" and r["method"] == "PUT" and r["status"] == 201 for r in recs)

    info = json.loads(run(["skopeo", "inspect", "--tls-verify=false", ref], tools_env).stdout)
    assert info["Digest"] == src.manifest_digest == "sha256:" + hashlib.sha256(src.manifest_bytes).hexdigest()
    assert info["RepoTags"] == ["v1"]
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", ref],
        capture_output=True,
        env={**os.environ, **tools_env},
        check=True,
    ).stdout
    assert raw == src.manifest_bytes
    tags = json.loads(
        run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{host}/ns/app"], tools_env).stdout
    )
    assert tags["Tags"] == ["v1"]

    # Copy back: every blob byte-identical.
    out = tmp_path / "out"
    run(["skopeo", "copy", "--src-tls-verify=false", ref, f"oci:{out}:v1"], tools_env)
    for blob in (src.path / "blobs" / "sha256").iterdir():
        assert (out / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()

    # Cross-repository copy: blobs are mounted, not uploaded again.
    run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            ref,
            f"docker://{host}/ns/copy:v1",
        ],
        tools_env,
    )
    mounts = [
        r
        for r in registry.records
        if r["endpoint"] == "upload_start" and r["repo"] == "ns/copy" and "mount=" in str(r["query"])
    ]
    assert mounts and all(r["status"] == 201 for r in mounts)
    copy_info = json.loads(
        run(["skopeo", "inspect", "--tls-verify=false", f"docker://{host}/ns/copy:v1"], tools_env).stdout
    )
    assert copy_info["Digest"] == src.manifest_digest

    # podman pulls the gzip image (ordinary pull).
    run(["podman", "pull", "--tls-verify=false", f"{host}/ns/app:v1"], tools_env)
    digest = run(
        ["podman", "image", "inspect", "--format", "{{.Digest}}", f"{host}/ns/app:v1"], tools_env
    ).stdout.strip()
    assert digest == src.manifest_digest
    names = sorted(src.files)[:5]
    assert mounted_files(tools_env, f"{host}/ns/app:v1", names) == {n: src.files[n] for n in names}

    # Delete by digest, then the tag is gone.
    run(["skopeo", "delete", "--tls-verify=false", ref], tools_env)
    assert any(r["method"] == "DELETE" and r["status"] == 202 for r in registry.records)
    gone = run(["skopeo", "inspect", "--tls-verify=false", ref], tools_env, check=False)
    assert gone.returncode != 0


def _partial_pull(
    registry: ThreadedRegistry, env: dict[str, str], repo: str, layout_dir: Path, src: Layout
) -> tuple[str, str]:
    """Push a zstd:chunked layout, pull it with partial pulls on; return (podman debug log, layer digest)."""
    host = registry.address
    _, manifest = read_layout_manifest(layout_dir, src.tag)
    run(
        [
            "skopeo",
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout_dir}:{src.tag}",
            f"docker://{host}/{repo}:{src.tag}",
        ],
        env,
    )
    layer = json.loads(manifest)["layers"][0]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    proc = run(["podman", "--log-level=debug", "pull", "--tls-verify=false", f"{host}/{repo}:{src.tag}"], env)
    names = sorted(src.files)
    pick = names[:3] + names[-3:]
    assert mounted_files(env, f"{host}/{repo}:{src.tag}", pick) == {n: src.files[n] for n in pick}
    return proc.stderr + proc.stdout, layer["digest"]


def test_podman_partial_pull_zstd_chunked(
    registry: ThreadedRegistry, tools_env: dict[str, str], tmp_path: Path
) -> None:
    # > 1000 files: the multi-range header is ~15 KB, above aiohttp's default 8190-byte limit.
    src = build_gzip_layout(tmp_path / "src", n_files=1100, file_bytes=1500)
    zdir = tmp_path / "zstd"
    zstd_chunked_copy(src, zdir, tools_env)
    log, layer = _partial_pull(registry, tools_env, "ns/zchunked", zdir, src)
    assert "Retrieved partial blob" in log
    reqs = blob_requests(registry, layer)
    assert reqs[0]["status"] == 206 and reqs[0]["ranges"] == 1  # the TOC, at the annotated offset
    multi = [r for r in reqs[1:] if r["status"] == 206 and int(str(r["ranges"])) >= 2]
    assert multi, reqs
    # One request carried (almost) all chunks: its header is above aiohttp's default 8190-byte limit.
    assert max(int(str(r["range_header_bytes"])) for r in multi) > 8190
    assert not [r for r in reqs if r["status"] == 200]  # no full GET of the layer

    # skopeo inspects the zstd:chunked image, copies it back byte-identical and deletes it.
    ref = f"docker://{registry.address}/ns/zchunked:v1"
    digest, manifest = read_layout_manifest(zdir, "v1")
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", ref],
        capture_output=True,
        env={**os.environ, **tools_env},
        check=True,
    ).stdout
    assert raw == manifest and "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    back = tmp_path / "back"
    run(["skopeo", "copy", "--preserve-digests", "--src-tls-verify=false", ref, f"oci:{back}:v1"], tools_env)
    for d in [json.loads(manifest)["config"]["digest"], layer]:
        name = d.split(":")[1]
        assert (back / "blobs" / "sha256" / name).read_bytes() == (
            zdir / "blobs" / "sha256" / name
        ).read_bytes()
    run(["skopeo", "delete", "--tls-verify=false", ref], tools_env)
    assert run(["skopeo", "inspect", "--tls-verify=false", ref], tools_env, check=False).returncode != 0


def test_podman_partial_pull_of_our_encoder(
    registry: ThreadedRegistry, tools_env: dict[str, str], tmp_path: Path
) -> None:
    from imageformat import build as ifbuild
    tree = tmp_path / "tree"
    files: dict[str, bytes] = {}
    for i in range(120):
        p = tree / "data" / f"f{i:04d}"
        p.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(2000) + b"z" * 2000
        p.write_bytes(data)
        files[f"data/f{i:04d}"] = data
    oci = tmp_path / "ours"
    ifbuild.build_image(tree, oci, "v1", "zstd:chunked-legacy")
    src = Layout(oci, "v1", files, *read_layout_manifest(oci, "v1"))
    log, layer = _partial_pull(registry, tools_env, "ns/ours", oci, src)
    assert "Retrieved partial blob" in log
    reqs = blob_requests(registry, layer)
    assert any(int(str(r["ranges"])) >= 2 and r["status"] == 206 for r in reqs)
    assert not [r for r in reqs if r["status"] == 200]


@pytest.mark.parametrize(
    ("kind", "refused_status"),
    [
        (FaultKind.RANGE_IGNORE, None),  # 200 for every GET: podman splits the body itself
        (FaultKind.MULTIRANGE_400, 400),  # c/storage halves the ranges, then falls back
        (FaultKind.RANGE_416, 416),  # podman 4.3.1 falls back (>= 5.33 would fail hard)
        (FaultKind.RANGE_MERGE, 206),  # fewer parts than ranges: checksum error, fallback
    ],
)
def test_podman_survives_range_faults(
    kind: FaultKind, refused_status: int | None, tools_env: dict[str, str], tmp_path: Path
) -> None:
    spec = RegistrySpec(
        root=str(tmp_path / "root"), faults=FaultSpec(seed=1, rules=(FaultRule(kind=kind, repo="faulty/*"),))
    )
    src = build_gzip_layout(tmp_path / "src", n_files=150)
    zdir = tmp_path / "zstd"
    zstd_chunked_copy(src, zdir, tools_env)
    with running_registry(spec) as reg:
        log, layer = _partial_pull(reg, tools_env, "faulty/app", zdir, src)  # asserts the files are right
        reqs = blob_requests(reg, layer)
    if refused_status is None:
        assert all(r["status"] == 200 for r in reqs)  # Range ignored: the whole blob every time
        return
    assert "Failed to retrieve partial blob" in log
    assert any(r["status"] == refused_status and int(str(r["ranges"])) >= 1 for r in reqs)
    assert reqs[-1]["status"] == 200 and reqs[-1]["ranges"] == 0  # the full-download fallback


def test_token_auth_with_skopeo_and_podman(tools_env: dict[str, str], tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret', n=1 << 12)}\n")
    spec = RegistrySpec(
        root=str(tmp_path / "root"),
        auth=AuthSpec(mode=AuthMode.TOKEN, users_file=str(users), allow_anonymous_pull=True),
    )
    src = build_gzip_layout(tmp_path / "src", n_files=5)
    with running_registry(spec) as reg:
        host = reg.address
        ref = f"docker://{host}/ns/auth:v1"
        denied = run(["skopeo", "copy", "--dest-tls-verify=false", src.ref, ref], tools_env, check=False)
        assert denied.returncode != 0
        assert "denied" in denied.stderr or "unauthorized" in denied.stderr
        wrong = run(
            ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "alice:nope", src.ref, ref],
            tools_env,
            check=False,
        )
        assert wrong.returncode != 0
        run(
            ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret", src.ref, ref],
            tools_env,
        )
        token_reqs = [r for r in reg.records if r["endpoint"] == "token"]
        assert any("account=alice" in str(r["query"]) and r["status"] == 200 for r in token_reqs)
        # Anonymous pull through pull-only tokens.
        info = json.loads(run(["skopeo", "inspect", "--tls-verify=false", ref], tools_env).stdout)
        assert info["Digest"] == src.manifest_digest
        run(["podman", "pull", "--tls-verify=false", f"{host}/ns/auth:v1"], tools_env)
        authfile = tmp_path / "podman-auth.json"
        bad = run(
            [
                "podman",
                "login",
                "--authfile",
                str(authfile),
                "--tls-verify=false",
                "-u",
                "alice",
                "-p",
                "wrong",
                host,
            ],
            tools_env,
            check=False,
        )
        assert bad.returncode != 0
        run(
            [
                "podman",
                "login",
                "--authfile",
                str(authfile),
                "--tls-verify=false",
                "-u",
                "alice",
                "-p",
                "s3cret",
                host,
            ],
            tools_env,
        )
        assert host in json.loads(authfile.read_text())["auths"]
        # podman without credentials cannot push
        refused = run(
            ["podman", "push", "--tls-verify=false", f"{host}/ns/auth:v1", f"docker://{host}/ns/anon:v1"],
            tools_env,
            check=False,
        )
        assert refused.returncode != 0
        # podman pushes with the stored credentials.
        run(
            [
                "podman",
                "push",
                "--authfile",
                str(authfile),
                "--tls-verify=false",
                f"{host}/ns/auth:v1",
                f"docker://{host}/ns/pushed:v1",
            ],
            tools_env,
        )
        assert any(
            r["endpoint"] == "manifest"
            and r["method"] == "PUT"
            and r["status"] == 201
            and r["repo"] == "ns/pushed"
            for r in reg.records
        )
