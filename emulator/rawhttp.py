"""A lean keep-alive HTTP/1.1 GET path for plain-HTTP blob range requests.

aiohttp's request machinery was ~40% of the client's CPU on a cold small read (profiled: ~0.1 ms
per request, twice that on a CPU that has just idled through the link's latency). This pool sends
a GET on its own asyncio protocol (one buffer per connection; the waiting task is woken once what it
waits for has arrived, not per segment) and parses the answer itself, for the plain answers a range GET gets:
a status line, headers and a Content-Length body. Anything else (redirects, bodies without a length,
informational answers) raises `NeedsFullClient` before the caller sees a response, and the caller
sends the request again with aiohttp. Retries, auth and the body checks stay with the caller.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import AsyncIterator, Mapping
from typing import overload
from urllib.parse import urlsplit

RECV_BYTES = 64 << 10  # one socket read at most
BUFFER_BYTES = 1 << 20  # read buffer per connection (flow control pauses at twice that); bounds a head too
_NO_BODY = (204, 304)
# A CPU that has idled through a whole RTT takes 0.1-0.2 ms longer to wake for the answer (the vCPU
# left the host; its caches went cold) than one that idled a short while. So the loop is woken this
# long before an answer is due (the shortest of a connection target's last answer times): the answer
# then finds it in a short idle. One timer per request; no change when the answer comes earlier.
# How short: a Python process answering after an idle of 0.1 / 0.2 / 0.3 / 0.5 / 1 / 10 ms is late by
# 29 / 38 / 62 / 85 / 149 / 217 us (median, this VM); 0.3 ms leaves room for the pre-wake's own
# late wake-up (0.15-0.2 ms after a 10 ms idle) and still ends in a ~0.1 ms idle.
PREWAKE_MARGIN_S = 0.0003
ANSWER_TIMES_KEPT = 8


def _awake() -> None:
    """The pre-wake timer's callback: waking the loop is all it is for."""


class NeedsFullClient(Exception):
    """An answer this path does not handle (redirect, no Content-Length, 1xx): the connection is
    dropped and the request must go through the full client."""


class BodyBrokeOff(ConnectionError):
    """The connection ended before the declared Content-Length arrived."""


def lean_target(url: str, headers: Mapping[str, str]) -> tuple[str, int, str] | None:
    """(host, port, request target) when `url` and `headers` can go out on this path, else None."""
    target = _lean_url(url)
    if target is None or any("\r" in v or "\n" in v for v in headers.values()):
        return None
    return target


@functools.lru_cache(maxsize=4096)  # a node asks for the same few blob URLs over and over
def _lean_url(url: str) -> tuple[str, int, str] | None:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.fragment:
        return None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    if not target.startswith("/") or not target.isascii() or any(c in target for c in " \r\n\t"):
        return None  # anything needing quoting goes through aiohttp
    return parts.hostname, parts.port or 80, target


class Headers(dict[str, str]):
    """Response headers by lower-cased name (the first of repeated fields), looked up in any case."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    @overload  # type: ignore[override]
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        return super().get(name.lower(), default)


class RawResponse:
    """The parts of `aiohttp.ClientResponse` the range handlers use; `content` is itself."""

    def __init__(self, status: int, headers: Headers, length: int, conn: _Conn) -> None:
        self.status = status
        self.headers = headers
        self.content_length = length
        self.content = self
        self._conn = conn
        self._left = length

    @property
    def consumed(self) -> bool:
        return self._left == 0

    async def read(self) -> bytes:
        n = self._left
        conn = self._conn
        if len(conn.buffer) < n:  # (a small body came with its head: no wait at all)
            await conn.wait_for(n)
        data = conn.take(n)
        self._left -= len(data)
        if self._left:
            got = self.content_length - self._left
            raise BodyBrokeOff(f"body ended after {got} of {self.content_length} bytes")
        return data

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        conn = self._conn
        while self._left:
            if not conn.buffer:
                await conn.wait_for(1)
            data = conn.take(min(n, self._left))
            if not data:
                raise BodyBrokeOff(
                    f"body ended after {self.content_length - self._left} of {self.content_length} bytes"
                )
            self._left -= len(data)
            yield data


class _Conn(asyncio.BufferedProtocol):
    """One keep-alive connection: received bytes kept in one buffer, and the waiting task woken
    only once what it waits for is there (a whole head, n body bytes) or the connection ended.
    Reading pauses while more than twice BUFFER_BYTES are unread. The socket is read into a
    buffer of the connection's own (asyncio's plain protocols get a fresh 256 KiB bytes object per
    read, which cost ~12 us per answer here)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False  # EOF or connection lost: no more bytes will come
        self.error: BaseException | None = None  # why the connection was lost, if not a clean EOF
        self.expired = False  # the exchange on it ran out of time (RawPool's watchdog)
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._need = 0  # bytes the waiter needs; 0 = a whole head (b"\r\n\r\n")
        self._scanned = 0  # the head end is not in buffer[:_scanned - 3]
        self._loop = asyncio.get_running_loop()
        self._landing = memoryview(bytearray(RECV_BYTES))

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._landing

    def buffer_updated(self, nbytes: int) -> None:
        self.buffer += self._landing[:nbytes]
        if self._waiter is not None:
            if self._satisfied():
                self._wake()
        elif not self._paused and len(self.buffer) > 2 * BUFFER_BYTES:  # nobody reading: hold the sender
            assert self.transport is not None
            self.transport.pause_reading()
            self._paused = True

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if exc is not None:
            self.error = exc
        self._wake()

    # -- the reading side
    def _satisfied(self) -> bool:
        if self._need:
            return len(self.buffer) >= self._need
        if self.buffer.find(b"\r\n\r\n", max(0, self._scanned - 3)) >= 0:
            return True
        self._scanned = len(self.buffer)
        return len(self.buffer) > BUFFER_BYTES

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    async def wait_for(self, need: int) -> None:
        """Until `need` bytes are buffered (0: a whole head) or the connection ended (the caller
        checks which)."""
        while not self.ended:
            self._need = need
            if self._satisfied():
                return
            if self._paused:  # a reader waits for more: let it come (as StreamReader does)
                self._resume()
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.error is not None and (self.expired or not self.buffer):
            raise self.error

    async def read_head(self) -> bytes:
        """The response head (through the blank line); IncompleteReadError at EOF before it,
        LimitOverrunError when BUFFER_BYTES pass without one."""
        self._scanned = 0
        await self.wait_for(0)
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > BUFFER_BYTES:
                raise asyncio.LimitOverrunError("response head too large", len(self.buffer))
            raise asyncio.IncompleteReadError(bytes(self.buffer), None)
        head = bytes(self.buffer[: end + 4])
        del self.buffer[: end + 4]
        return head

    def take(self, n: int) -> bytes:
        """Up to `n` buffered bytes (fewer only when fewer are buffered)."""
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        if self._paused and len(self.buffer) <= BUFFER_BYTES:
            self._resume()
        return data

    def _resume(self) -> None:
        self._paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def expire(self, timeout_s: float) -> None:
        """The exchange ran out of time: drop the connection, its reader gets a TimeoutError."""
        self.expired = self.ended = True
        self.error = TimeoutError(f"no complete answer within {timeout_s} s")
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RawPool:
    """Idle keep-alive connections per (host, port), at most `limit` open at once.

    Each exchange (waiting for a slot, connecting, the head and the body as the handler reads it)
    must end within `timeout_s` of `get`, else it fails with TimeoutError. Connections in use are
    watched by one timer per pool that looks every `timeout_s / 20` (an `asyncio.timeout` per
    request costs a timer, its cancellation and two coroutines on every cold read); the rare waits
    for a slot or a new connection have their own deadline."""

    def __init__(self, limit: int, timeout_s: float = 300.0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s (={timeout_s}) must be > 0")
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._slots = asyncio.Semaphore(limit)
        self.timeout_s = timeout_s
        self._busy: dict[_Conn, float] = {}  # connection in use -> its exchange's deadline (loop time)
        self._watchdog: asyncio.TimerHandle | None = None
        self._answer_times: dict[tuple[str, int], collections.deque[float]] = {}  # send -> head, s

    def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _watch(self, conn: _Conn, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        self._busy[conn] = deadline
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout_s / 20, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for conn, deadline in list(self._busy.items()):
            if now >= deadline:
                del self._busy[conn]
                conn.expire(self.timeout_s)
        self._watchdog = loop.call_later(self.timeout_s / 20, self._sweep, loop) if self._busy else None

    async def get(self, host: str, port: int, target: str, headers: Mapping[str, str]) -> _Exchange:
        """Send `GET target` and read the response head; the body is read through the exchange."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        if self._slots.locked():
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        else:
            await self._slots.acquire()  # (returns at once)
        try:
            head = "".join(
                [
                    f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n",
                    *[f"{k}: {v}\r\n" for k, v in headers.items()],
                    "\r\n",
                ]
            ).encode("latin-1")
            idle = self._idle.get((host, port))
            while idle:  # the server may have closed an idle connection meanwhile: EOF before any byte
                conn = idle.pop()
                if conn.ended and not conn.buffer:
                    conn.close()  # known closed: no need to try it
                    continue
                self._watch(conn, deadline, loop)
                try:
                    return await self._exchange(conn, host, port, head)
                except asyncio.IncompleteReadError as e:
                    self._drop(conn)
                    if e.partial:
                        raise ConnectionResetError("connection closed inside the response head") from None
                except BaseException:
                    self._drop(conn)
                    raise
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(_Conn, host, port)
            self._watch(conn, deadline, loop)
            try:
                return await self._exchange(conn, host, port, head)
            except asyncio.IncompleteReadError:
                self._drop(conn)
                raise ConnectionResetError("connection closed before a response") from None
            except BaseException:
                self._drop(conn)
                raise
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(self, conn: _Conn, host: str, port: int, head: bytes) -> _Exchange:
        loop = conn._loop
        conn.write(head)
        sent = loop.time()
        times = self._answer_times.get((host, port))
        wake = None
        if times and (due := min(times)) > PREWAKE_MARGIN_S:
            wake = loop.call_at(sent + due - PREWAKE_MARGIN_S, _awake)
        try:
            raw = await conn.read_head()
        except asyncio.LimitOverrunError:
            raise NeedsFullClient("response head too large") from None
        finally:
            if wake is not None:
                wake.cancel()
        if times is None:
            times = self._answer_times[(host, port)] = collections.deque(maxlen=ANSWER_TIMES_KEPT)
        times.append(loop.time() - sent)
        status, headers, keep_alive = _parse_head(raw)
        if status < 200 or 300 <= status < 400 or "transfer-encoding" in headers:
            raise NeedsFullClient(f"HTTP {status}")
        length_text = headers.get("content-length")
        if status in _NO_BODY:
            length = 0
        elif length_text is None or not length_text.strip().isdigit():
            raise NeedsFullClient(f"HTTP {status} without a Content-Length")
        else:
            length = int(length_text)
        return _Exchange(self, conn, (host, port), RawResponse(status, headers, length, conn), keep_alive)

    def _drop(self, conn: _Conn) -> None:
        self._busy.pop(conn, None)
        conn.close()

    def _release(self, conn: _Conn, key: tuple[str, int], reusable: bool) -> None:
        self._busy.pop(conn, None)
        if reusable:
            self._idle.setdefault(key, []).append(conn)
        else:
            conn.close()
        self._slots.release()


class _Exchange:
    """`async with` it: the response; afterwards the connection goes back to the pool if its
    body was read to the end (a 401 drained, say) and nothing else came, else it is closed."""

    def __init__(
        self, pool: RawPool, conn: _Conn, key: tuple[str, int], resp: RawResponse, keep: bool
    ) -> None:
        self._pool = pool
        self._conn = conn
        self._key = key
        self.response = resp
        self._keep = keep

    async def __aenter__(self) -> RawResponse:
        return self.response

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """What `async with` does on the way out (callers on the hot path skip its coroutines)."""
        conn = self._conn
        # whatever the handler made of the body; bytes past it would be read as the next answer
        reusable = self._keep and self.response.consumed and not conn.buffer and not conn.ended
        self._pool._release(conn, self._key, reusable)


def _parse_head(raw: bytes) -> tuple[int, Headers, bool]:
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ConnectionResetError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers = Headers()
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ConnectionResetError(f"malformed header line {line[:80]!r}")
        headers.setdefault(name.lower(), value.strip())
    connection = headers.get("Connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return int(code), headers, keep_alive
