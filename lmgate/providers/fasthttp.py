"""A small pooled HTTP/1.1 client for the upstream hot path.

aiohttp's client costs ~150-250 µs of CPU per request (request and response objects, tracing hooks,
multidicts, a timer per read): most of what separated lmgate from a bare Python proxy. This client
does only what providers need -- a bytes body out; a Content-Length, chunked or until-close body
back, parsed by httptools (C) -- over keep-alive pools per origin, so a pooled request costs one
write, one parser feed, a few callbacks and at most one timer.

Not supported (providers/http.py keeps aiohttp for those): multipart or streamed request bodies,
response decompression (no Accept-Encoding is sent), cookies, redirects, proxies, HTTP/2,
`Expect: 100-continue`, HEAD.
"""

from __future__ import annotations

import asyncio
import functools
import select
import ssl as ssl_module
from collections import deque
from typing import Any, Iterator, Mapping, NamedTuple

import httptools
import yarl

HIGH_WATER = 256 * 1024  # body bytes held for a slow stream consumer before the socket is paused
KEEPALIVE = 60.0  # seconds an idle connection is kept (what the aiohttp connector was given)
STALE_AFTER = 1.0  # an idle connection older than this is checked for an unread close before reuse


class HttpError(Exception):
    """A failure of this client other than a timeout (timeouts raise asyncio.TimeoutError)."""


class ConnectError(HttpError):
    """No connection could be made (refused, DNS, TLS handshake): the upstream is unreachable."""


class ConnectionBroken(HttpError):
    """The connection closed or reset before the response was complete."""


class ProtocolError(HttpError):
    """The upstream's answer is not valid HTTP/1.1."""


class InvalidRequest(HttpError, ValueError):
    """The request cannot be sent as given (not an http(s) URL, a line break in a header)."""


class Timeout(NamedTuple):
    """Seconds or None; the field names of aiohttp.ClientTimeout, so one value serves both clients."""

    total: float | None = None  # the whole call, the body included
    connect: float | None = None  # waiting for a pooled connection plus connecting (TLS included)
    sock_read: float | None = None  # each wait for bytes: the first byte, then between chunks


class Headers(Mapping[str, str]):
    """Response headers: case-insensitive lookups, names as sent, the first value of a repeated name."""

    __slots__ = ("_items", "_index")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._items = [(n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for n, v in raw]
        self._index = {n.lower(): v for n, v in reversed(self._items)}

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._index.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return (n for n, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]  # every pair, repeats included
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class _Target(NamedTuple):
    origin: tuple[bool, str, int]  # (tls, host, port): the pool key
    host_header: str
    path: str  # path and query, percent-encoded as they go on the wire


@functools.lru_cache(maxsize=1024)
def _target(url: str | yarl.URL) -> _Target:
    """Providers call a handful of URLs over and over: parse each once."""
    try:
        u = url if isinstance(url, yarl.URL) else yarl.URL(url)
    except ValueError as exc:
        raise InvalidRequest(f"not a URL: {url}") from exc
    if u.scheme not in ("http", "https") or not u.raw_host or u.port is None:
        raise InvalidRequest(f"not an http(s) URL: {url}")
    return _Target((u.scheme == "https", u.raw_host, u.port), u.host_port_subcomponent or u.raw_host, u.raw_path_qs)


def _head(method: str, target: _Target, headers: Mapping[str, str], length: int) -> bytes:
    """The request line and headers; a line break inside a header would smuggle a header, so refuse it."""
    lines = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    n = len(headers)
    if lines.count("\n") != n or lines.count("\r") != n:
        raise InvalidRequest("a header name or value contains a line break")
    host = "" if "Host" in headers or "host" in headers else f"Host: {target.host_header}\r\n"
    return f"{method} {target.path} HTTP/1.1\r\n{host}Content-Length: {length}\r\n{lines}\r\n".encode()


def _again(exc: BaseException) -> BaseException:
    """A fresh copy of a stored failure, so raising it twice does not stack tracebacks."""
    return type(exc)(*exc.args)


class _Exchange:
    """One response's state, fed by its connection and read through its Response. Kept apart from
    the Response so nothing long-lived holds that: a Response dropped unreleased is freed at once,
    and its __del__ closes an unfinished connection (which would otherwise hold a pool slot)."""

    __slots__ = (
        "loop", "conn", "raw", "status", "head_done", "interim", "until_eof", "done", "error", "chunks",
        "size", "paused", "reading_all", "waiter", "deadline", "read_timeout", "until", "timer", "timer_at",
    )  # fmt: skip

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float | None, read_timeout: float | None) -> None:
        self.loop, self.deadline, self.read_timeout = loop, deadline, read_timeout  # deadline: total, absolute
        self.conn: _Connection | None = None
        self.raw: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.status = self.size = 0
        self.head_done = self.interim = self.until_eof = self.done = self.paused = self.reading_all = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.until: float | None = None  # when the current wait times out
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    async def wait(self) -> None:
        """Until the connection has news. One timer serves many waits: when it fires early (a later
        wait moved the deadline), it re-arms instead of a timer being made and cancelled per read."""
        until = self.deadline
        if self.read_timeout is not None:
            t = self.loop.time() + self.read_timeout
            if until is None or t < until:
                until = t
        self.until = until
        if until is not None and (self.timer is None or self.timer_at > until):
            if self.timer is not None:
                self.timer.cancel()
            self.timer, self.timer_at = self.loop.call_at(until, self._on_timer), until
        self.waiter = self.loop.create_future()
        await self.waiter

    def _on_timer(self) -> None:
        self.timer = None
        w, until = self.waiter, self.until
        if w is None or w.done() or until is None:
            return  # nobody is waiting; the next wait arms a new timer
        if self.loop.time() + 0.001 < until:
            self.timer, self.timer_at = self.loop.call_at(until, self._on_timer), until
            return
        self.fail(asyncio.TimeoutError())

    def wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def finish(self) -> None:
        self.done = True
        self._stop_timer()
        self.wake()

    def fail(self, exc: BaseException) -> None:
        """Record the first failure, wake the reader, and drop the connection: it is mid-response."""
        if self.error is None and not self.done:
            self.error = exc
        self.wake()
        self.abandon()

    def abandon(self) -> None:
        """The reader is gone: an unfinished connection cannot carry another request, so close it."""
        self._stop_timer()
        conn = self.conn
        if conn is not None:
            self.conn = conn.ex = None
            conn.transport.abort()

    def take(self) -> bytes:
        """Everything buffered, and the socket resumed if a slow reader had paused it."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.size = 0
        self.resume()
        return data

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            if self.conn is not None:
                self.conn.transport.resume_reading()


class Response:
    """The part of aiohttp.ClientResponse that providers use: status, headers, read(),
    content.iter_any() and release()."""

    __slots__ = ("status", "_ex", "_raw", "_headers", "_body")

    def __init__(self, ex: _Exchange) -> None:
        self.status = ex.status
        self._ex: _Exchange | None = ex
        self._raw = ex.raw
        self._headers: Headers | None = None
        self._body: bytes | None = None

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._raw)
        return self._headers

    @property
    def content(self) -> Response:
        """`resp.content.iter_any()` as with aiohttp."""
        return self

    async def read(self) -> bytes:
        """The whole body (the connection goes back to the pool as soon as its last byte arrives)."""
        if self._body is None:
            ex = self._ex
            if ex is None:
                raise ConnectionBroken("the response was released before its body was read")
            ex.reading_all = True  # never pause: all of it is wanted
            ex.resume()
            while not ex.done and ex.error is None:
                await ex.wait()
            if ex.error is not None:
                raise _again(ex.error)
            self._body = ex.take()
        return self._body

    def iter_any(self) -> _Pieces:
        """The body in the pieces it arrives in; reading pauses while HIGH_WATER bytes wait here."""
        return _Pieces(self._ex)

    def release(self) -> None:
        """Done with the response: a connection still carrying an unread body is closed, not reused."""
        ex, self._ex = self._ex, None
        if ex is not None:
            ex.abandon()

    __del__ = release


class _Pieces:
    """iter_any's iterator: a class, not an async generator, so a consumer that stops early leaves
    nothing for the loop to finalize (an abandoned generator costs a task to close)."""

    __slots__ = ("ex",)

    def __init__(self, ex: _Exchange | None) -> None:
        self.ex = ex

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> bytes:
        ex = self.ex
        while ex is not None:
            if ex.chunks:
                return ex.take()
            if ex.error is not None:
                raise _again(ex.error)
            if ex.done:
                break
            await ex.wait()
        raise StopAsyncIteration


class _Connection(asyncio.Protocol):
    """One keep-alive TCP (or TLS) connection and its parser; feeds the exchange it is carrying."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.ex: _Exchange | None = None
        self.lost = False
        self.idle_since = 0.0
        self.fd = -1

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.fd = sock.fileno()

    def send(self, ex: _Exchange, head: bytes, body: bytes) -> bool:
        """Write one request; False if the connection proved closed before or while writing it (the
        upstream cannot have seen it, so the caller may safely send it on another connection)."""
        t = self.transport
        if self.lost or t.is_closing():
            return False
        self.ex, ex.conn = ex, self
        if len(body) > 65536:
            t.writelines((head, body))  # no copy of a big body
        else:
            t.write(head + body)
        if t.is_closing():  # the write failed on the spot: the server had already closed
            self.ex = ex.conn = None
            return False
        return True

    def data_received(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:  # bytes nobody asked for: this connection cannot be trusted
            self.transport.abort()
            return
        try:
            self.parser.feed_data(data)
        except Exception as exc:
            ex.fail(ProtocolError(f"invalid HTTP response: {exc}"))
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        ex = self.ex
        if ex is not None:
            self.ex = ex.conn = None
            if ex.until_eof and ex.head_done:
                ex.finish()  # a body delimited by the close has ended
            else:
                ex.fail(ConnectionBroken("the upstream closed the connection" + (f": {exc}" if exc else "")))
        self.pool.lost(self)

    # -- httptools callbacks --------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.ex
        if ex is not None and not ex.head_done:  # (trailers are ignored)
            ex.raw.append((name, value))

    def on_headers_complete(self) -> None:
        ex = self.ex
        if ex is None:
            raise ProtocolError("a response nobody asked for")
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (103 Early Hints...): the real one follows
            ex.raw, ex.interim = [], True
            return
        ex.status, ex.head_done = status, True
        if not self.parser.should_keep_alive():
            ex.until_eof = _until_eof(status, ex.raw)
        ex.wake()

    def on_body(self, body: bytes) -> None:
        ex = self.ex
        assert ex is not None
        ex.chunks.append(body)
        ex.size += len(body)
        if ex.size > HIGH_WATER and not ex.paused and not ex.reading_all:
            ex.paused = True
            self.transport.pause_reading()
        if ex.waiter is not None:
            ex.wake()

    def on_message_complete(self) -> None:
        ex = self.ex
        assert ex is not None
        if ex.interim:
            ex.interim = False
            return
        self.ex = ex.conn = None
        if ex.paused:
            ex.paused = False
            self.transport.resume_reading()
        ex.finish()
        if self.lost or not self.parser.should_keep_alive():
            self.transport.close()  # `Connection: close` (or HTTP/1.0): not reusable
        else:
            self.pool.release(self)


def _until_eof(status: int, raw: list[tuple[bytes, bytes]]) -> bool:
    """Whether a not-kept-alive response's body runs until the connection closes."""
    if status in (204, 304):
        return False
    return not any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in raw)


class _Pool:
    """Keep-alive connections to one origin: at most `limit` open, idle ones reused newest first
    (the oldest then age out), callers beyond the limit served in arrival order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, ssl: ssl_module.SSLContext | None, limit: int) -> None:
        self.loop, self.host, self.port, self.ssl, self.limit = loop, host, port, ssl, limit
        self.idle: deque[_Connection] = deque()
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self.count = 0  # open or opening connections
        self.conns: set[_Connection] = set()
        self.closed = False

    def take_idle(self) -> _Connection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if self._usable(conn):
                return conn
            conn.transport.abort()
        return None

    def _usable(self, conn: _Connection) -> bool:
        if conn.lost or conn.transport.is_closing():
            return False
        idle_for = self.loop.time() - conn.idle_since
        if idle_for > KEEPALIVE:
            return False
        if idle_for > STALE_AFTER and conn.fd >= 0:
            # The server may have closed it a moment ago, its FIN not yet read by the loop: a socket
            # that is readable while idle holds a close (or junk), so never write a request into it.
            poller = select.poll()  # (select.select cannot watch descriptors above 1023)
            poller.register(conn.fd, select.POLLIN)
            return not poller.poll(0)
        return True

    async def acquire(self) -> tuple[_Connection, bool]:
        """An idle connection (reused: True) or a new one; waits in line while `limit` are open."""
        while True:
            conn = self.take_idle()
            if conn is not None:
                return conn, True
            if self.closed:
                raise HttpError("the client is closed")
            if self.count < self.limit and not self.waiters:
                self.count += 1
                return await self._connect(), False
            fut: asyncio.Future[_Connection | None] = self.loop.create_future()
            self.waiters.append(fut)
            try:
                got = await fut
            except BaseException:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    self._pass_on(fut.result())  # handed something just as we gave up
                elif fut in self.waiters:
                    self.waiters.remove(fut)
                raise
            if got is None:  # a freed slot, counted for us
                return await self._connect(), False
            if self._usable(got):
                return got, True
            got.transport.abort()

    async def _connect(self) -> _Connection:
        """A new connection in a slot the caller has counted."""
        try:
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self), self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
            )
        except BaseException as exc:
            self.count -= 1
            self._wake_slot()
            if isinstance(exc, OSError):  # refused, unreachable, DNS, TLS (ssl errors are OSErrors)
                raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            raise
        self.conns.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        """A connection whose response is complete: to the first waiter, else onto the idle stack."""
        if self.closed:
            conn.transport.close()
            return
        conn.idle_since = now = self.loop.time()
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        idle = self.idle
        idle.append(conn)
        if idle[0].idle_since < now - KEEPALIVE:
            idle.popleft().transport.close()

    def lost(self, conn: _Connection) -> None:
        """Called once per connection that was made, when it closes (idle or not)."""
        if conn in self.conns:
            self.conns.discard(conn)
            try:
                self.idle.remove(conn)
            except ValueError:
                pass
            self.count -= 1
            self._wake_slot()

    def _wake_slot(self) -> None:
        while self.waiters and self.count < self.limit and not self.closed:
            w = self.waiters.popleft()
            if not w.done():
                self.count += 1
                w.set_result(None)
                return

    def _pass_on(self, got: _Connection | None) -> None:
        if got is None:
            self.count -= 1
            self._wake_slot()
        else:
            self.release(got)

    def close(self) -> None:
        self.closed = True
        for conn in list(self.conns):
            conn.transport.close()
        self.idle.clear()
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_exception(HttpError("the client is closed"))


class Client:
    """Keep-alive pools per origin (each bounded by `max_connections`) for one provider. `ssl`: True
    verifies with the system's CAs, False encrypts without verifying (tests), or a context."""

    def __init__(self, max_connections: int = 256, *, ssl: ssl_module.SSLContext | bool = True) -> None:
        self.max_connections = max_connections
        self._ssl = ssl
        self._context: ssl_module.SSLContext | None = ssl if isinstance(ssl, ssl_module.SSLContext) else None
        self._pools: dict[tuple[bool, str, int], _Pool] = {}
        self.closed = False

    async def request(
        self, method: str, url: str | yarl.URL, *, headers: Mapping[str, str], body: bytes = b"", timeout: Any = Timeout()
    ) -> Response:
        """Send one request and return once the response's status and headers are in.
        `timeout` has total / connect / sock_read (this module's Timeout or aiohttp.ClientTimeout)."""
        if self.closed:
            raise HttpError("the client is closed")
        target = _target(url)
        pool = self._pools.get(target.origin) or self._pool(target.origin)
        head = _head(method, target, headers, len(body))
        loop = pool.loop
        total = timeout.total
        deadline = loop.time() + total if total else None
        while True:
            conn = pool.take_idle()
            reused = conn is not None
            if conn is None:
                conn, reused = await self._acquire(pool, timeout.connect, deadline)
            ex = _Exchange(loop, deadline, timeout.sock_read)
            if conn.send(ex, head, body):
                break
            # Closed before the request went out (so it is safe to send again): try the next idle
            # connection, and in the end a new one; only a new connection failing is an error.
            conn.transport.abort()
            if not reused:
                raise ConnectionBroken("the upstream closed the connection before the request was sent")
        try:
            while not ex.head_done:
                if ex.error is not None:
                    raise _again(ex.error)
                await ex.wait()
        except BaseException:
            ex.abandon()
            raise
        return Response(ex)

    async def _acquire(self, pool: _Pool, connect: float | None, deadline: float | None) -> tuple[_Connection, bool]:
        limit = connect
        if deadline is not None:
            left = deadline - pool.loop.time()
            limit = left if limit is None or left < limit else limit
        if limit is None:
            return await pool.acquire()
        async with asyncio.timeout(limit):
            return await pool.acquire()

    def _pool(self, origin: tuple[bool, str, int]) -> _Pool:
        tls, host, port = origin
        context = None
        if tls:
            if self._context is None:
                self._context = ssl_module.create_default_context()
                if self._ssl is False:
                    self._context.check_hostname = False
                    self._context.verify_mode = ssl_module.CERT_NONE
            context = self._context
        pool = self._pools[origin] = _Pool(asyncio.get_running_loop(), host, port, context, self.max_connections)
        return pool

    async def close(self) -> None:
        self.closed = True
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
        await asyncio.sleep(0)  # let the transports report their close
