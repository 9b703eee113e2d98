"""Per-app registry state (one typed AppKey) and the per-request context the access log reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .accesslog import AccessLog
from .auth import Authority
from .config import RegistrySpec
from .faults import NO_FAULTS, ActiveFaults, FaultInjector
from .metrics import Metrics
from .shaping import Link
from .storage import Storage


@dataclass
class RegistryState:
    spec: RegistrySpec
    storage: Storage
    link: Link
    faults: FaultInjector
    auth: Authority
    metrics: Metrics
    access_log: AccessLog


@dataclass
class RequestContext:
    endpoint: str = "other"
    repo: str | None = None
    digest: str | None = None
    ranges: int = 0
    range_header: str | None = None  # first 256 characters
    range_header_bytes: int = 0
    bytes_sent: int = 0
    faults: ActiveFaults = field(default_factory=lambda: NO_FAULTS)


STATE = web.AppKey("registry_state", RegistryState)
_CTX = web.RequestKey("registry_ctx", RequestContext)


def state_of(request: web.Request) -> RegistryState:
    return request.app[STATE]


def ctx_of(request: web.Request) -> RequestContext:
    ctx = request.get(_CTX)
    if ctx is None:
        ctx = RequestContext()
        request[_CTX] = ctx
    return ctx
