"""The aiohttp application and the in-process API.

    async with await start_registry(RegistrySpec(...)) as reg:   # or: await reg.stop()
        reg.url, reg.records, reg.metrics_text()
    with running_registry(RegistrySpec(...)) as reg:           # from sync code: own thread + event loop
        ...

Request pipeline (one middleware): rate limit (429) -> route -> name check -> auth (401) -> faults
(5xx, slow first byte) -> handler; the added latency is waited out just before the response starts
(request arrival + latency; the registry's own processing runs inside it); every request is logged and
counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from . import blobs, preciseloop
from .accesslog import AccessLog
from .auth import Authority, parse_scopes
from .config import FaultKind, FaultSpec, LinkSpec, RegistrySpec
from .disk import DiskStorage
from .errors import RegistryError
from .faults import FaultInjector
from .metrics import Metrics
from .names import check_name
from .routes import resolve
from .shaping import Link
from .state import STATE, RegistryState, ctx_of, state_of
from .storage import MemoryStorage, Storage
from .transfer import RESPONSE_NOT_BEFORE, BodyCut, ClientGone, hold_response

log = logging.getLogger("registry_mock")
API_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}


def _realm(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/token"


async def v2_base(request: web.Request) -> web.Response:
    st = state_of(request)
    ctx_of(request).endpoint = "base"
    st.auth.authorize(request.headers.get("Authorization"), _realm(request), None, frozenset())
    return web.json_response({}, headers=API_HEADERS)


async def v2_dispatch(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    ctx = ctx_of(request)
    tail = request.match_info["tail"]
    if tail == "_catalog" and request.method == "GET":
        ctx.endpoint = "catalog"
        st.auth.authorize(request.headers.get("Authorization"), _realm(request), None, frozenset())
        from .tags import catalog

        return await catalog(request)
    route = resolve(request.method, tail)
    ctx.endpoint = route.endpoint
    ctx.repo = route.repo[:300]
    ctx.digest = route.params.get("digest")
    check_name(route.repo)
    st.auth.authorize(request.headers.get("Authorization"), _realm(request), route.repo, route.needed)
    ctx.faults = st.faults.select(request.method, request.path, route.repo, ctx.digest)
    await _request_faults(request)
    return await route.handler(request, route.repo, **route.params)


async def redirect_target(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    digest = request.match_info["digest"]
    ctx_of(request).faults = st.faults.select(request.method, request.path, None, digest)
    ctx_of(request).faults.rules.pop(FaultKind.REDIRECT, None)
    await _request_faults(request)
    return await blobs.get_redirected_blob(request)


async def _request_faults(request: web.Request) -> None:
    faults = ctx_of(request).faults
    if not faults:
        return
    rule = faults.get(FaultKind.ERROR_5XX)
    if rule is not None:
        raise RegistryError("UNAVAILABLE", "injected fault", status=rule.status)
    rule = faults.get(FaultKind.SLOW_FIRST_BYTE)
    if rule is not None:
        deadline = request.get(RESPONSE_NOT_BEFORE)
        if deadline is not None:  # on top of the link's latency, as before
            request[RESPONSE_NOT_BEFORE] = deadline + rule.delay_s
        else:
            await asyncio.sleep(rule.delay_s)


async def token(request: web.Request) -> web.Response:
    st = state_of(request)
    ctx_of(request).endpoint = "token"
    if request.method == "POST":
        form = await request.post()
        scopes_raw = [str(v) for v in form.getall("scope", [])]
    else:
        scopes_raw = request.query.getall("scope", [])
    user = st.auth.check_basic(request.headers.get("Authorization"))
    return web.json_response(st.auth.issue(user, parse_scopes(scopes_raw)))


async def metrics(request: web.Request) -> web.Response:
    ctx_of(request).endpoint = "metrics"
    return web.Response(body=state_of(request).metrics.render().encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


@web.middleware
async def pipeline(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
    st = state_of(request)
    ctx = ctx_of(request)
    loop = asyncio.get_running_loop()
    t0 = _arrival(request, loop.time())
    linked = request.path.startswith(("/v2", "/_blobs"))
    response: web.StreamResponse | None = None
    status = 500
    try:
        if linked:
            retry = st.link.admit()
            if retry is not None:
                raise RegistryError("TOOMANYREQUESTS", "request rate limit exceeded",
                                    headers={"Retry-After": str(max(1, int(retry + 0.999)))})
            if st.link.spec.latency_s > 0:  # waited out just before the response starts
                request[RESPONSE_NOT_BEFORE] = t0 + st.link.spec.latency_s
        response = await handler(request)
        status = response.status
        await hold_response(request)
    except RegistryError as e:
        response = e.to_response(head=request.method == "HEAD")
        status = e.status
        await hold_response(request)
    except ClientGone as e:
        response, status = e.response, 499
        ctx.bytes_sent = e.sent
    except BodyCut as e:
        response, status = e.response, e.response.status
        ctx.bytes_sent = e.sent
    except web.HTTPException as e:
        status = e.status
        await hold_response(request)
        raise
    except (ConnectionError, asyncio.CancelledError):
        status = 499  # client went away mid-response
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path_qs[:200])
        response = RegistryError("UNAVAILABLE", "internal error", status=500).to_response()
        status = 500
    finally:
        duration = loop.time() - t0
        if linked and ctx.endpoint == "other":
            ctx.endpoint = "unknown"
        st.access_log.write({
            "ts": time.time(), "method": request.method, "path": request.path[:512],
            "query": request.query_string[:512], "status": status, "endpoint": ctx.endpoint,
            "ranges": ctx.ranges, "range": ctx.range_header,
            "range_header_bytes": ctx.range_header_bytes, "bytes_sent": ctx.bytes_sent,
            "duration_s": round(duration, 6), "repo": ctx.repo, "digest": ctx.digest,
            "faults": ctx.faults.names(),
        })
        st.metrics.observe(endpoint=ctx.endpoint, method=request.method, status=status,
                           bytes_sent=ctx.bytes_sent, ranges=ctx.ranges, duration_s=duration,
                           faults=ctx.faults.names())
    if not response.prepared:
        for k, v in API_HEADERS.items():
            response.headers.setdefault(k, v)
    return response


class _ArrivalStamp(asyncio.Protocol):
    """aiohttp's protocol for one connection, noting when its latest bytes arrived. The emulated
    latency runs from a request's arrival, not from the start of the middleware, which aiohttp
    reaches two event-loop turns later (0.13-0.2 ms here on a cold small range GET)."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self.inner = inner
        self.arrived_at: float | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.arrived_at = self._loop.time()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def _arrival(request: web.Request, now: float) -> float:
    """When the request's last bytes arrived (the latest data on its connection before its handling
    started: never before the request was complete), or `now` when unknown (e.g. aiohttp's test server)."""
    transport = request.transport
    arrived = getattr(transport.get_protocol(), "arrived_at", None) if transport is not None else None
    return arrived if arrived is not None and arrived <= now else now


def make_storage(spec: RegistrySpec) -> Storage:
    return DiskStorage(spec.root) if spec.root else MemoryStorage()


def build_app(spec: RegistrySpec | None = None, storage: Storage | None = None) -> web.Application:
    spec = spec or RegistrySpec()
    state = RegistryState(
        spec=spec, storage=storage or make_storage(spec), link=Link(spec.link),
        faults=FaultInjector(spec.faults),
        auth=Authority(spec.auth), metrics=Metrics(), access_log=AccessLog(spec.access_log),
    )
    state.metrics.active_transfers = lambda: state.link.active
    app = web.Application(middlewares=[pipeline], client_max_size=spec.max_manifest_bytes + 1024,
                          handler_args={"max_line_size": spec.header_limit_bytes,
                                        "max_field_size": spec.header_limit_bytes})
    app[STATE] = state
    app.router.add_get("/v2/", v2_base)
    app.router.add_get("/v2", v2_base)
    app.router.add_route("*", "/v2/{tail:.+}", v2_dispatch)
    app.router.add_get("/_blobs/{digest}", redirect_target)
    app.router.add_route("GET", "/token", token)
    app.router.add_route("POST", "/token", token)
    app.router.add_get("/metrics", metrics)

    async def _close(app: web.Application) -> None:
        app[STATE].access_log.close()
        app[STATE].storage.close()

    app.on_cleanup.append(_close)
    return app


class RunningRegistry:
    """A registry serving on a loopback port inside the current event loop."""

    def __init__(self, runner: web.AppRunner, listener: asyncio.Server, host: str, port: int) -> None:
        self.runner = runner
        self._listener = listener
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"

    @property
    def address(self) -> str:
        """host:port, as container tools write registry references."""
        return f"{self.host}:{self.port}"

    @property
    def state(self) -> RegistryState:
        return self.runner.app[STATE]

    @property
    def records(self) -> list[dict[str, Any]]:
        """Access-log records so far (a copy)."""
        return list(self.state.access_log.records)

    def metrics_text(self) -> str:
        return self.state.metrics.render()

    def set_link(self, link: LinkSpec) -> None:
        """Reshape the link for requests that start from now on (transfers in flight keep their link)."""
        self.state.link = Link(link)

    def set_faults(self, faults: FaultSpec) -> None:
        """Replace the fault rules (decision counters restart, so a seed replays from here)."""
        self.state.faults = FaultInjector(faults)

    async def stop(self) -> None:
        self._listener.close()
        await self.runner.cleanup()

    async def __aenter__(self) -> RunningRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_registry(
    spec: RegistrySpec | None = None, host: str = "127.0.0.1", port: int = 0, storage: Storage | None = None
) -> RunningRegistry:
    """Start a registry on host:port (port 0: a free one) in the running loop; `.url` says where."""
    app = build_app(spec, storage)
    spec = app[STATE].spec
    runner = web.AppRunner(app, access_log=None, max_line_size=spec.header_limit_bytes,
                           max_field_size=spec.header_limit_bytes, handler_cancellation=True)
    await runner.setup()
    server = runner.server
    assert server is not None
    # aiohttp's low-level server is the protocol factory (what web.TCPSite hands to create_server)
    listener = await asyncio.get_running_loop().create_server(
        lambda: _ArrivalStamp(server()), host, port, reuse_address=True, backlog=1024
    )
    bound = listener.sockets[0].getsockname()[1]
    return RunningRegistry(runner, listener, host, int(bound))


class ThreadedRegistry:
    """A RunningRegistry on its own thread and event loop, for synchronous callers (tests, tools)."""

    def __init__(self, spec: RegistrySpec | None, host: str, port: int, storage: Storage | None) -> None:
        self._loop = preciseloop.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._reg: RunningRegistry | None = None
        self._thread = threading.Thread(target=self._run, args=(spec, host, port, storage), daemon=True,
                                        name="registry_mock")
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self, spec: RegistrySpec | None, host: str, port: int, storage: Storage | None) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._reg = self._loop.run_until_complete(start_registry(spec, host, port, storage))
        except BaseException as e:  # reported to the starting thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._reg.stop())
        self._loop.close()

    @property
    def registry(self) -> RunningRegistry:
        assert self._reg is not None
        return self._reg

    @property
    def url(self) -> str:
        return self.registry.url

    @property
    def address(self) -> str:
        return self.registry.address

    @property
    def state(self) -> RegistryState:
        return self.registry.state

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.call(lambda: self.registry.records)

    def metrics_text(self) -> str:
        return self.call(self.registry.metrics_text)

    def set_link(self, link: LinkSpec) -> None:
        self.call(lambda: self.registry.set_link(link))

    def set_faults(self, faults: FaultSpec) -> None:
        self.call(lambda: self.registry.set_faults(faults))

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the registry's loop thread and return its result."""
        async def _go() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(_go(), self._loop).result()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()


@contextlib.contextmanager
def running_registry(
    spec: RegistrySpec | None = None, host: str = "127.0.0.1", port: int = 0, storage: Storage | None = None
) -> Iterator[ThreadedRegistry]:
    """Context manager for sync code: a registry on a background thread, stopped on exit."""
    reg = ThreadedRegistry(spec, host, port, storage)
    try:
        yield reg
    finally:
        reg.stop()
