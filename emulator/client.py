"""An aiohttp client for any OCI registry: resolve, auth, retries, blob GETs.

- Resolve `ref` -> (index ->) linux/amd64 image manifest -> config (OCI distribution spec
  §"Pulling manifests"); manifests fetched by digest and the config are verified.
- Auth (registry.md §2): the first 401 carries the challenge; `Bearer` -> token from the realm
  (anonymous, or with Basic credentials and `account=`), cached per scope; `Basic` -> the
  credentials on every request.
- Plain HTTP for loopback hosts; any other host needs `insecure_http=True` (else HTTPS).
- Retries with exponential backoff for 5xx (not 501), 429 (honouring Retry-After) and dropped
  connections / short bodies; the body handler runs inside the retry, so a transfer that
  breaks mid-body is retried from scratch.
- `lean=True` requests (plain-HTTP blob range GETs) go out on emulator.rawhttp's keep-alive pool
  and come back to aiohttp for any answer that pool does not handle (redirects, no length).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from emulator.errors import (
    AuthError,
    ManifestError,
    NotFoundError,
    RegistryError,
    TransferError,
    VerificationError,
)
from emulator.rawhttp import NeedsFullClient, RawPool, RawResponse, lean_target
from emulator.recorder import NullRecorder, Recorder
from emulator.reference import ImageReference
from imageformat.digest import sha256_digest

T = TypeVar("T")
Response = aiohttp.ClientResponse | RawResponse  # what a `call` handler gets

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT_MANIFESTS = ", ".join([MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST])
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    username: str | None = None
    password: str | None = None
    insecure_http: bool = False  # plain HTTP for non-loopback hosts
    max_connections: int = 32  # connection pool size (per client)
    max_retries: int = 5
    backoff_initial_s: float = 0.03
    backoff_max_s: float = 5.0
    request_timeout_s: float = 300.0
    os: str = "linux"
    architecture: str = "amd64"

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections (={self.max_connections}) must be >= 1")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s (={self.request_timeout_s}) must be > 0")
        if self.max_retries < 0:
            raise ValueError(f"max_retries (={self.max_retries}) must be >= 0")
        if self.backoff_initial_s < 0 or self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_initial_s must be >= 0 and <= backoff_max_s")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerDescriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    diff_id: str = ""  # the config's rootfs.diff_ids entry


@dataclass(frozen=True, kw_only=True)
class ResolvedImage:
    reference: ImageReference
    manifest_digest: str
    manifest: Mapping[str, Any]
    config_digest: str
    config: Mapping[str, Any]
    layers: tuple[LayerDescriptor, ...]
    bytes_manifest: int  # index + manifest + config bytes moved
    requests: int = 0  # documents fetched (index, manifest, config)


class _Retry(Exception):
    def __init__(self, why: str, delay_s: float | None = None) -> None:
        super().__init__(why)
        self.delay_s = delay_s


class _Reauthenticate(Exception):
    def __init__(self, challenge: str) -> None:
        super().__init__(challenge)
        self.challenge = challenge


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^\s,]+)')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` -> ("bearer", {realm:…, service:…})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for m in _CHALLENGE_PARAM.finditer(rest):
        if m.group(1):
            params[m.group(1).lower()] = m.group(2)
        else:
            params[m.group(3).lower()] = m.group(4)
    return scheme.lower(), params


class RegistryClient:
    """One connection pool and one auth state; use as `async with RegistryClient(...) as c`."""

    def __init__(self, options: ClientOptions | None = None, *, recorder: Recorder | None = None) -> None:
        self.options = options or ClientOptions()
        self.recorder = recorder or NullRecorder()
        self._session: aiohttp.ClientSession | None = None
        self._raw = RawPool(self.options.max_connections, self.options.request_timeout_s)
        self._base_urls: dict[ImageReference, str] = {}
        self._full_client_hosts: set[str] = set()  # hosts whose answers the lean path handed over
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._challenge: dict[str, tuple[str, dict[str, str]]] = {}  # host -> challenge
        self._auth_lock = asyncio.Lock()
        self.requests = 0  # HTTP requests sent (including auth and retries)
        self.body_bytes = 0  # blob body bytes received (whole blobs and ranges), for progress displays

    async def __aenter__(self) -> RegistryClient:
        self.session  # noqa: B018 - create it now, inside the running loop
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.options.max_connections, limit_per_host=0)
            timeout = aiohttp.ClientTimeout(total=self.options.request_timeout_s, sock_connect=10)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        self._raw.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- URLs and auth ------------------------------------------------------------------------
    def base_url(self, ref: ImageReference) -> str:
        url = self._base_urls.get(ref)
        if url is None:
            http = ref.is_loopback or self.options.insecure_http
            url = self._base_urls[ref] = f"{'http' if http else 'https'}://{ref.host}/v2/{ref.repository}"
        return url

    def _auth_header(self, ref: ImageReference) -> dict[str, str]:
        ch = self._challenge.get(ref.host)
        if ch is None:
            return {}
        scheme, _ = ch
        if scheme == "basic":
            if self.options.username is None:
                return {}
            raw = f"{self.options.username}:{self.options.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        token = self._tokens.get(f"repository:{ref.repository}:pull")
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _authenticate(self, ref: ImageReference, www_authenticate: str, used: dict[str, str]) -> None:
        async with self._auth_lock:
            if self._auth_header(ref) != used and self._auth_header(ref):
                return  # another task already refreshed the credentials
            scheme, params = parse_challenge(www_authenticate)
            self._challenge[ref.host] = (scheme, params)
            if scheme == "basic":
                if self.options.username is None:
                    raise AuthError(f"{ref.host} requires Basic credentials (none given)", 401)
                return
            if scheme != "bearer" or "realm" not in params:
                raise AuthError(f"{ref.host}: unsupported auth challenge {www_authenticate[:80]!r}", 401)
            scope = f"repository:{ref.repository}:pull"
            query = {"scope": scope}
            if "service" in params:
                query["service"] = params["service"]
            headers: dict[str, str] = {}
            if self.options.username is not None:
                query["account"] = self.options.username
                raw = f"{self.options.username}:{self.options.password or ''}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            self.requests += 1
            try:
                async with self.session.get(params["realm"], params=query, headers=headers) as resp:
                    if resp.status in (401, 403):
                        raise AuthError(
                            f"token endpoint {params['realm']} refused the credentials ({resp.status})",
                            resp.status,
                        )
                    if resp.status != 200:
                        raise AuthError(
                            f"token endpoint {params['realm']} answered {resp.status}", resp.status
                        )
                    body = await resp.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as e:
                raise AuthError(f"token endpoint {params['realm']} failed: {e}") from None
            token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise AuthError(f"token endpoint {params['realm']} returned no token")
            self._tokens[scope] = token

    # -- the request loop ---------------------------------------------------------------------
    async def call(
        self,
        ref: ImageReference,
        method: str,
        path: str,
        handler: Callable[[Response], Awaitable[T]],
        *,
        headers: Mapping[str, str] | None = None,
        what: str = "",
        lean: bool = False,
    ) -> T:
        """Send `method base_url+path`, authenticate and retry as needed, let `handler` read the body.

        `handler` gets every final response (2xx, 3xx not followed, 4xx other than 401) and
        decides; it may raise `RetryableBody` for a body that broke off. `lean`: a GET that may
        go out on the raw keep-alive pool (see emulator.rawhttp).
        """
        url = self.base_url(ref) + path
        attempt, auth_tries = 0, 0
        lean = lean and method == "GET" and ref.host not in self._full_client_hosts
        while True:
            used = self._auth_header(ref)
            hdrs = {**headers, **used} if headers and used else dict(headers or used)
            target = lean_target(url, hdrs) if lean else None
            self.requests += 1
            try:
                if target is not None:  # (the pool and the aiohttp session have the same total timeout)
                    exchange = await self._raw.get(*target, hdrs)
                    try:
                        return await self._answer(ref, exchange.response, handler, what or url)
                    finally:
                        exchange.release()
                async with self.session.request(method, url, headers=hdrs) as resp:
                    return await self._answer(ref, resp, handler, what or url)
            except _Reauthenticate as a:
                auth_tries += 1
                if auth_tries > 2:
                    raise AuthError(f"{what or url}: access denied (401)", 401) from None
                await self._authenticate(ref, a.challenge, used)
                continue
            except NeedsFullClient:
                # the answer needs aiohttp (a redirect, say): send it again through it, and send
                # this host's requests through it from now on (a redirecting registry redirects all)
                lean = False
                self._full_client_hosts.add(ref.host)
                continue
            except _Retry as r:
                why, delay = str(r), r.delay_s
            except (
                TimeoutError,
                aiohttp.ClientPayloadError,
                aiohttp.ClientConnectionError,
                ConnectionError,
                RetryableBody,
            ) as e:
                why, delay = f"{type(e).__name__}: {e}", None
            attempt += 1
            if attempt > self.options.max_retries:
                raise TransferError(f"{what or url}: failed after {attempt} attempts ({why})")
            backoff = min(self.options.backoff_max_s, self.options.backoff_initial_s * 2 ** (attempt - 1))
            await asyncio.sleep(max(backoff, delay or 0.0))

    async def _answer(self, ref: ImageReference, resp: Response, handler: Callable[[Response], Awaitable[T]],
                      what: str) -> T:
        """The status checks every response goes through, then `handler`."""
        if resp.status == 401 and "WWW-Authenticate" in resp.headers:
            await resp.read()
            raise _Reauthenticate(resp.headers["WWW-Authenticate"])
        if resp.status in (401, 403):
            raise AuthError(f"{what}: access denied ({resp.status})", resp.status)
        if resp.status == 429 or (resp.status >= 500 and resp.status != 501):
            raise _Retry(f"HTTP {resp.status}", _retry_after(resp.headers.get("Retry-After")))
        return await handler(resp)

    # -- manifests ----------------------------------------------------------------------------
    async def _get_manifest(self, ref: ImageReference, reference: str) -> tuple[bytes, str]:
        async def handle(resp: Response) -> tuple[bytes, str]:
            if resp.status == 404:
                raise NotFoundError(f"{ref.repository}:{reference}: manifest unknown", 404)
            if resp.status != 200:
                raise RegistryError(f"manifest {reference}: HTTP {resp.status}", resp.status)
            body = await _read_capped(resp, MAX_MANIFEST_BYTES)
            return body, resp.headers.get("Content-Type", "").split(";")[0].strip()

        body, ctype = await self.call(
            ref,
            "GET",
            f"/manifests/{reference}",
            handle,
            headers={"Accept": ACCEPT_MANIFESTS},
            what=f"manifest {ref.repository}:{reference}",
        )
        if reference.startswith("sha256:") and sha256_digest(body) != reference:
            raise VerificationError(f"manifest {reference}: content digest {sha256_digest(body)} differs")
        return body, ctype

    async def resolve(self, ref: ImageReference) -> ResolvedImage:
        """Index -> platform manifest -> config, every document verified by digest."""
        body, ctype = await self._get_manifest(ref, ref.reference)
        moved, docs = len(body), 2
        doc = _json(body, "manifest")
        mtype = doc.get("mediaType") or ctype
        if mtype in (MT_OCI_INDEX, MT_DOCKER_LIST) or "manifests" in doc:
            digest = self._pick_platform(doc, ref)
            body, ctype = await self._get_manifest(ref, digest)
            moved += len(body)
            docs += 1
            doc = _json(body, "manifest")
        manifest_digest = sha256_digest(body)
        try:
            config_desc = doc["config"]
            layer_descs = doc["layers"]
            config_digest = str(config_desc["digest"])
        except (KeyError, TypeError):
            raise ManifestError(f"{ref}: manifest has no config/layers") from None
        config_bytes = await self.fetch_blob(ref, config_digest, max_bytes=MAX_MANIFEST_BYTES)
        moved += len(config_bytes)
        config = _json(config_bytes, "config")
        diff_ids = list(config.get("rootfs", {}).get("diff_ids", []) or [])
        layers = []
        for i, ld in enumerate(layer_descs):
            try:
                layers.append(
                    LayerDescriptor(
                        media_type=str(ld["mediaType"]),
                        digest=str(ld["digest"]),
                        size=int(ld["size"]),
                        annotations=dict(ld.get("annotations") or {}),
                        diff_id=str(diff_ids[i]) if i < len(diff_ids) else "",
                    )
                )
            except (KeyError, TypeError, ValueError):
                raise ManifestError(f"{ref}: layer descriptor {i} is malformed") from None
        return ResolvedImage(
            reference=ref,
            manifest_digest=manifest_digest,
            manifest=doc,
            config_digest=config_digest,
            config=config,
            layers=tuple(layers),
            bytes_manifest=moved,
            requests=docs,
        )

    def _pick_platform(self, index: Mapping[str, Any], ref: ImageReference) -> str:
        for m in index.get("manifests", []):
            p = m.get("platform") or {}
            if p.get("os") == self.options.os and p.get("architecture") == self.options.architecture:
                return str(m["digest"])
        raise ManifestError(f"{ref}: no {self.options.os}/{self.options.architecture} image in the index")

    # -- blobs --------------------------------------------------------------------------------
    async def fetch_blob(self, ref: ImageReference, digest: str, *, max_bytes: int | None = None) -> bytes:
        """A whole blob in memory, verified against its digest."""
        chunks: list[bytes] = []

        async def sink(data: bytes) -> None:
            chunks.append(data)

        async def restart() -> None:
            chunks.clear()

        await self.stream_blob(ref, digest, sink, max_bytes=max_bytes, restart=restart)
        return b"".join(chunks)

    async def stream_blob(
        self,
        ref: ImageReference,
        digest: str,
        sink: Callable[[bytes], Awaitable[None]],
        *,
        max_bytes: int | None = None,
        restart: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Stream a blob into `sink`; verify its digest at the end (raise VerificationError).

        On a retry the stream restarts from byte 0: `restart` (if given) is awaited first so
        the caller can discard what it has consumed.
        """
        import hashlib

        started = False

        async def handle(resp: Response) -> int:
            nonlocal started
            if resp.status == 404:
                raise NotFoundError(f"blob {digest}: unknown to {ref.host}/{ref.repository}", 404)
            if resp.status != 200:
                raise RegistryError(f"blob {digest}: HTTP {resp.status}", resp.status)
            if started and restart is not None:
                await restart()
            started = True
            h = hashlib.sha256()
            n = 0
            async for data in resp.content.iter_chunked(1 << 20):
                n += len(data)
                self.body_bytes += len(data)
                if max_bytes is not None and n > max_bytes:
                    raise RegistryError(f"blob {digest}: larger than {max_bytes} bytes")
                h.update(data)
                await sink(data)
            declared = resp.content_length
            if declared is not None and n != declared:
                raise RetryableBody(f"blob {digest}: body ended after {n} of {declared} bytes")
            got = "sha256:" + h.hexdigest()
            if got != digest:
                raise VerificationError(f"blob {digest}: content digest is {got}")
            return n

        return await self.call(ref, "GET", f"/blobs/{digest}", handle, what=f"blob {digest[:19]}")


class RetryableBody(Exception):
    """A response body that broke off or came back short: the request is retried."""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 60.0))
    except ValueError:
        return None


async def _read_capped(resp: Response, cap: int) -> bytes:
    buf = bytearray()
    async for data in resp.content.iter_chunked(65536):
        buf += data
        if len(buf) > cap:
            raise ManifestError(f"document larger than {cap} bytes")
    if resp.content_length is not None and len(buf) != resp.content_length:
        raise RetryableBody(f"body ended after {len(buf)} of {resp.content_length} bytes")
    return bytes(buf)


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{what} is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return doc
