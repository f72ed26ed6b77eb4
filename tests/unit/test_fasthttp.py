"""lmgate's upstream HTTP client against real servers on 127.0.0.1, on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
import datetime
import gc
import hashlib
import ipaddress
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
import uvloop
from aiohttp import web

from lmgate.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from lmgate.providers import fasthttp, http
from lmgate.providers.fasthttp import Client, ConnectError, ConnectionBroken, Timeout

QUICK = Timeout(total=5.0, connect=5.0, sock_read=5.0)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Run one scenario in a fresh loop of each kind (production uses uvloop)."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def run(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(fn(*args))

    return run


# -- servers ----------------------------------------------------------------------------------


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *rest = head.decode().split("\r\n")
    headers = dict(h.split(": ", 1) for h in rest if h)
    length = next((int(v) for k, v in headers.items() if k.lower() == "content-length"), 0)
    return line, headers, await reader.readexactly(length)


Answer = Callable[[tuple[str, dict[str, str], bytes], asyncio.StreamWriter], Awaitable[Any]]


class Raw:
    """A scripted HTTP/1.1 server: `answer(request, writer)` replies; returning False closes."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.closed = asyncio.Event()

    async def __aenter__(self) -> Raw:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    def url(self, path: str = "/v1/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while (req := await read_request(reader)) is not None:
                self.requests.append(req)
                if await self.answer(req, writer) is False:
                    break
                await writer.drain()
        finally:
            writer.close()
            self.closed.set()


def reply(body: bytes = b"ok", status: str = "200 OK", extra: str = "") -> Answer:
    async def answer(req: Any, w: asyncio.StreamWriter) -> None:
        w.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)

    return answer


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# -- bodies -------------------------------------------------------------------------------------


def test_content_length_body_and_headers(run: Any) -> None:
    async def scenario() -> None:
        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            line, headers, body = req
            out = repr((line, sorted(headers.items()), body)).encode()
            w.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\nX-Request-Id: a\r\nx-request-id: b\r\n\r\n%s" % (len(out), out))

        async with Raw(answer) as srv:
            c = Client()
            resp = await c.request("POST", srv.url("/v1/chat?x=1"), headers={"Authorization": "Bearer k", "Content-Type": "application/json"}, body=b"{}", timeout=QUICK)
            assert resp.status == 201
            assert resp.headers["x-request-id"] == "a" and resp.headers.get("X-REQUEST-ID") == "a"
            assert resp.headers.get("missing", "d") == "d" and "Content-Length" in resp.headers
            assert ("X-Request-Id", "a") in resp.headers.items() and ("x-request-id", "b") in resp.headers.items()
            line, headers, body = eval(await resp.read())
            resp.release()
            assert line == "POST /v1/chat?x=1 HTTP/1.1" and body == b"{}"
            assert dict(headers) == {
                "Host": f"127.0.0.1:{srv.port}", "Content-Length": "2", "Authorization": "Bearer k", "Content-Type": "application/json"
            }  # fmt: skip
            await c.close()

    run(scenario)


def test_chunked_body_and_interim_answer(run: Any) -> None:
    async def scenario() -> None:
        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"hello ", b"chunked ", b"world"):
                w.write(chunk(part))
                await w.drain()
            w.write(b"0\r\n\r\n")

        async with Raw(answer) as srv:
            c = Client()
            for _ in range(2):
                resp = await c.request("POST", srv.url(), headers={}, body=b"x", timeout=QUICK)
                assert resp.status == 200 and "Link" not in resp.headers
                assert await resp.read() == b"hello chunked world"
                resp.release()
            assert srv.connections == 1
            await c.close()

    run(scenario)


def test_stream_yields_pieces_before_the_end(run: Any) -> None:
    async def scenario() -> None:
        go_on = asyncio.Event()

        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n" + chunk(b"data: 1\n\n"))
            await w.drain()
            await go_on.wait()  # the rest only once the client has seen the first piece
            w.write(chunk(b"data: 2\n\n") + b"0\r\n\r\n")

        async with Raw(answer) as srv:
            c = Client()
            resp = await c.request("POST", srv.url(), headers={}, body=b"{}", timeout=QUICK)
            pieces = []
            async for piece in resp.content.iter_any():
                pieces.append(piece)
                go_on.set()
            resp.release()
            assert pieces == [b"data: 1\n\n", b"data: 2\n\n"]
            await c.close()

    run(scenario)


def test_no_body_statuses_keep_the_connection(run: Any) -> None:
    async def scenario() -> None:
        statuses = iter(["204 No Content", "304 Not Modified", "200 OK"])

        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            status = next(statuses)
            w.write(f"HTTP/1.1 {status}\r\n{'Content-Length: 2' if status == '200 OK' else 'X-A: b'}\r\n\r\n".encode())
            if status == "200 OK":
                w.write(b"ok")

        async with Raw(answer) as srv:
            c = Client()
            got = []
            for _ in range(3):
                resp = await c.request("GET", srv.url(), headers={}, timeout=QUICK)
                got.append((resp.status, await resp.read()))
                resp.release()
            assert got == [(204, b""), (304, b""), (200, b"ok")] and srv.connections == 1
            await c.close()

    run(scenario)


def test_large_bodies_both_ways(run: Any) -> None:
    big = bytes(range(256)) * (10 * 1024 * 1024 // 256)

    async def scenario() -> None:
        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            line, headers, body = req
            if line.startswith("POST"):
                digest = hashlib.sha256(body).hexdigest().encode()
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(digest), digest))
            else:
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big))
                w.write(big)

        async with Raw(answer) as srv:
            c = Client()
            resp = await c.request("POST", srv.url(), headers={}, body=big, timeout=QUICK)
            assert await resp.read() == hashlib.sha256(big).hexdigest().encode()
            resp = await c.request("GET", srv.url(), headers={}, timeout=QUICK)
            assert await resp.read() == big
            # A slow reader: the socket pauses instead of everything piling up here.
            resp = await c.request("GET", srv.url(), headers={}, timeout=QUICK)
            ex, got, most = resp._ex, [], 0
            async for piece in resp.content.iter_any():
                got.append(piece)
                most = max(most, len(piece))
                for _ in range(5):
                    await asyncio.sleep(0)
            assert ex is not None and b"".join(got) == big and most <= fasthttp.HIGH_WATER + 512 * 1024
            resp.release()
            assert srv.connections == 1
            await c.close()

    run(scenario)


# -- the pool -----------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(run: Any) -> None:
    async def scenario() -> None:
        async with Raw(reply(b'{"a":1}')) as srv:
            c = Client()
            for _ in range(20):
                resp = await c.request("POST", srv.url(), headers={"Content-Type": "application/json"}, body=b"{}", timeout=QUICK)
                assert await resp.read() == b'{"a":1}'
                resp.release()
            assert srv.connections == 1 and len(srv.requests) == 20
            await c.close()

    run(scenario)


def test_pool_limit_and_fifo_waiters(run: Any) -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            await release.wait()
            await reply(req[2])(req, w)

        async with Raw(answer) as srv:
            c = Client(max_connections=2)

            async def call(name: bytes) -> bytes:
                resp = await c.request("POST", srv.url(), headers={}, body=name, timeout=QUICK)
                try:
                    return await resp.read()
                finally:
                    resp.release()

            tasks = []
            for name in (b"a", b"b", b"c", b"d", b"e"):
                tasks.append(asyncio.create_task(call(name)))
                await asyncio.sleep(0)  # each queues behind the previous one
            while len(srv.requests) < 2:
                await asyncio.sleep(0.01)
            release.set()
            assert await asyncio.gather(*tasks) == [b"a", b"b", b"c", b"d", b"e"]
            assert srv.connections == 2
            assert [r[2] for r in srv.requests[2:]] == [b"c", b"d", b"e"]  # waiters served in order
            await c.close()

    run(scenario)


def test_freed_slots_go_to_waiters_and_cancelled_waiters_leave_none_behind(run: Any) -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def answer(req: Any, w: asyncio.StreamWriter) -> bool:
            if req[2] == b"first":
                await release.wait()
                await reply(b"first", extra="Connection: close\r\n")(req, w)
                return False
            await reply(req[2])(req, w)
            return True

        async with Raw(answer) as srv:
            c = Client(max_connections=1)

            async def call(name: bytes) -> bytes:
                resp = await c.request("POST", srv.url(), headers={}, body=name, timeout=QUICK)
                try:
                    return await resp.read()
                finally:
                    resp.release()

            first = asyncio.create_task(call(b"first"))
            while not srv.requests:
                await asyncio.sleep(0.01)
            gone, second = asyncio.create_task(call(b"gone")), asyncio.create_task(call(b"second"))
            await asyncio.sleep(0.01)
            gone.cancel()
            release.set()  # the first connection closes: its slot goes to the next live waiter
            assert await first == b"first" and await second == b"second"
            assert await call(b"third") == b"third"
            assert srv.connections == 2 and [r[2] for r in srv.requests] == [b"first", b"second", b"third"]
            (pool,) = c._pools.values()
            assert pool.count == 1 and not pool.waiters
            await c.close()
            with pytest.raises(fasthttp.HttpError):
                await call(b"late")

    run(scenario)


def test_garbage_answer_is_a_protocol_error(run: Any) -> None:
    async def scenario() -> None:
        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            w.write(b"SMTP ready\r\n\r\n")

        async with Raw(answer) as srv:
            c = Client()
            with pytest.raises(fasthttp.ProtocolError):
                await c.request("POST", srv.url(), headers={}, timeout=QUICK)
            await c.close()

    run(scenario)


def test_pool_wait_counts_as_connect_timeout(run: Any) -> None:
    async def scenario() -> None:
        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            await asyncio.Event().wait()

        async with Raw(answer) as srv:
            c = Client(max_connections=1)
            first = asyncio.create_task(c.request("POST", srv.url(), headers={}, timeout=Timeout(sock_read=30)))
            while not srv.requests:
                await asyncio.sleep(0.01)
            with pytest.raises(asyncio.TimeoutError):
                await c.request("POST", srv.url(), headers={}, timeout=Timeout(connect=0.2, sock_read=30))
            first.cancel()
            await c.close()

    run(scenario)


def test_server_closing_idle_connections(run: Any) -> None:
    async def scenario() -> None:
        async def answer(req: Any, w: asyncio.StreamWriter) -> bool:
            await reply()(req, w)
            return False  # keep-alive promised, then closed while idle

        async with Raw(answer) as srv:
            c = Client()
            for _ in range(3):
                resp = await c.request("POST", srv.url(), headers={}, timeout=QUICK)
                assert await resp.read() == b"ok"
                resp.release()
                await srv.closed.wait()
                srv.closed.clear()
                await asyncio.sleep(0.02)  # the client sees the close while idle
            assert srv.connections == 3
            await c.close()

    run(scenario)


def test_connection_close_answers_are_not_reused(run: Any) -> None:
    async def scenario() -> None:
        bodies = iter([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"])

        async def answer(req: Any, w: asyncio.StreamWriter) -> bool:
            w.write(next(bodies))
            await w.drain()
            return False

        async with Raw(answer) as srv:
            c = Client()
            got = []
            for _ in range(2):
                resp = await c.request("POST", srv.url(), headers={}, timeout=QUICK)
                got.append(await resp.read())
                resp.release()
            assert got == [b"ok", b"until the end"] and srv.connections == 2
            await c.close()

    run(scenario)


def test_close_mid_body_is_an_error_and_the_connection_is_dropped(run: Any) -> None:
    async def scenario() -> None:
        calls = 0

        async def answer(req: Any, w: asyncio.StreamWriter) -> bool:
            nonlocal calls
            calls += 1
            if calls == 1:
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
                await w.drain()
                return False
            await reply()(req, w)
            return True

        async with Raw(answer) as srv:
            c = Client()
            resp = await c.request("POST", srv.url(), headers={}, timeout=QUICK)
            with pytest.raises(ConnectionBroken):
                await resp.read()
            resp.release()
            resp = await c.request("POST", srv.url(), headers={}, timeout=QUICK)
            assert await resp.read() == b"ok" and srv.connections == 2
            await c.close()

    run(scenario)


def test_unreleased_response_closes_its_connection(run: Any) -> None:
    async def scenario() -> None:
        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"part"))

        async with Raw(answer) as srv:
            c = Client(max_connections=1)
            resp = await c.request("POST", srv.url(), headers={}, timeout=QUICK)
            del resp  # dropped mid-body without release()
            gc.collect()
            await srv.closed.wait()
            await asyncio.sleep(0.02)
            resp = await c.request("POST", srv.url(), headers={}, timeout=Timeout(connect=2, sock_read=0.2))
            assert resp.status == 200 and srv.connections == 2
            resp.release()
            await c.close()

    run(scenario)


class ThreadServer:
    """A blocking server in a thread, so it can close a connection while the client's loop is
    blocked and has not yet read the close: the race of reusing a connection the server just shut."""

    def __init__(self, reset: bool) -> None:
        self.reset = reset
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.close_now, self.closed = threading.Event(), threading.Event()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _answer(self, conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            got = conn.recv(65536)
            if not got:
                return False
            data += got
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        self.connections += 1
        self._answer(conn)
        self.close_now.wait()
        if self.reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()
        self.closed.set()
        conn, _ = self.sock.accept()
        self.connections += 1
        while self._answer(conn):
            pass
        conn.close()


@pytest.mark.parametrize("reset, stale_check", [(False, True), (True, True), (True, False), (False, False)])
def test_reused_connection_closed_by_the_server_a_moment_ago(run: Any, monkeypatch: pytest.MonkeyPatch, reset: bool, stale_check: bool) -> None:
    """Closed before we wrote (an unread FIN/RST found by the idle check, or a write that fails on
    the spot): sent again on a new connection. Closed after the request went out: an error, as
    a POST that may have been seen must not be sent twice."""
    monkeypatch.setattr(fasthttp, "STALE_AFTER", 0.0 if stale_check else 1e9)

    async def scenario() -> None:
        srv = ThreadServer(reset)
        c = Client()
        url = f"http://127.0.0.1:{srv.port}/"
        resp = await c.request("POST", url, headers={}, body=b"1", timeout=QUICK)
        assert await resp.read() == b"ok"
        srv.close_now.set()
        srv.closed.wait(5)  # the loop is blocked: the close is in the kernel, unread
        time.sleep(0.05)
        if stale_check or reset:
            resp = await c.request("POST", url, headers={}, body=b"2", timeout=QUICK)
            assert await resp.read() == b"ok" and srv.connections == 2
        else:
            with pytest.raises(ConnectionBroken):
                resp = await c.request("POST", url, headers={}, body=b"2", timeout=QUICK)
                await resp.read()
        await c.close()

    run(scenario)


# -- failures and timeouts ----------------------------------------------------------------------


def test_connect_refused_is_a_connect_error(run: Any) -> None:
    async def scenario() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        c = Client()
        with pytest.raises(ConnectError):
            await c.request("POST", f"http://127.0.0.1:{port}/", headers={}, timeout=QUICK)
        await c.close()

    run(scenario)


def test_connect_timeout_when_the_listener_never_accepts(run: Any) -> None:
    """A full accept queue on loopback: Linux drops further SYNs, so connecting hangs."""

    async def scenario() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
        c = Client()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await c.request("POST", f"http://127.0.0.1:{port}/", headers={}, timeout=Timeout(total=5, connect=0.3))
        finally:
            await c.close()
            for f in fillers:
                f.close()
            listener.close()

    run(scenario)


def test_total_and_idle_timeouts(run: Any) -> None:
    async def scenario() -> None:
        async def answer(req: Any, w: asyncio.StreamWriter) -> None:
            if req[2] == b"silent":
                await asyncio.Event().wait()
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"first"))
            await w.drain()
            await asyncio.Event().wait()

        async with Raw(answer) as srv:
            c = Client()
            with pytest.raises(asyncio.TimeoutError):  # no answer at all, whole call
                await c.request("POST", srv.url(), headers={}, body=b"silent", timeout=Timeout(total=0.3, connect=1))
            with pytest.raises(asyncio.TimeoutError):  # no first byte, stream
                await c.request("POST", srv.url(), headers={}, body=b"silent", timeout=Timeout(connect=1, sock_read=0.3))
            resp = await c.request("POST", srv.url(), headers={}, body=b"stall", timeout=Timeout(total=0.3, connect=1))
            with pytest.raises(asyncio.TimeoutError):  # the body never ends, whole call
                await resp.read()
            resp.release()
            resp = await c.request("POST", srv.url(), headers={}, body=b"stall", timeout=Timeout(connect=1, sock_read=0.3))
            pieces = []
            with pytest.raises(asyncio.TimeoutError):  # silent mid-stream
                async for piece in resp.content.iter_any():
                    pieces.append(piece)
            assert pieces == [b"first"]
            resp.release()
            assert srv.connections == 4  # a timed-out connection is never reused
            await c.close()

    run(scenario)


# -- TLS ------------------------------------------------------------------------------------------


def self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def test_tls(run: Any, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)

    async def scenario() -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.Response(body=b"secret " + await request.read())

        app = web.Application()
        app.router.add_post("/v1/x", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        trusting = ssl.create_default_context(cafile=str(cert))
        try:
            for client in (Client(ssl=False), Client(ssl=trusting)):
                for host in ("127.0.0.1", "localhost"):
                    for _ in range(2):
                        resp = await client.request("POST", f"https://{host}:{port}/v1/x", headers={}, body=b"hi", timeout=QUICK)
                        assert await resp.read() == b"secret hi"
                        resp.release()
                await client.close()
            strict = Client()  # the system's CAs do not know our certificate
            with pytest.raises(ConnectError):
                await strict.request("POST", f"https://127.0.0.1:{port}/v1/x", headers={}, timeout=QUICK)
            await strict.close()
        finally:
            await runner.cleanup()

    run(scenario)


# -- requests that cannot be sent, and lmgate's mapping in providers/http.py --------------------


def test_invalid_requests(run: Any) -> None:
    async def scenario() -> None:
        c = Client()
        with pytest.raises(fasthttp.InvalidRequest):
            await c.request("POST", "ftp://example.com/x", headers={}, timeout=QUICK)
        with pytest.raises(fasthttp.InvalidRequest):
            await c.request("POST", "http://127.0.0.1:1/x", headers={"X-A": "a\r\nX-Injected: 1"}, timeout=QUICK)
        await c.close()

    run(scenario)


def test_http_send_maps_failures(run: Any) -> None:
    def parse_error(status: int, body: bytes, headers: Any) -> http.UpstreamFailure:
        return http.UpstreamFailure(status, body.decode())

    async def scenario() -> None:
        async def answer(req: Any, w: asyncio.StreamWriter) -> bool:
            if req[2] == b"429":
                await reply(b"slow down", "429 Too Many Requests", "Retry-After: 7\r\n")(req, w)
                return True
            if req[2] == b"cut":
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{")
                await w.drain()
                return False
            if req[0].startswith("POST /form"):
                await reply(b'{"form": %d}' % (b"multipart/form-data" in req[1]["Content-Type"].encode()))(req, w)
                return True
            await reply(b'{"ok": true}')(req, w)
            return True

        async with Raw(answer) as srv:
            pool = http.HttpPool()
            kw: dict[str, Any] = dict(headers={}, timeout=http.timeout_for(5.0, 5.0), parse_error=parse_error, redact=str, provider="p")
            up = pool.session("p", 4)
            assert await http.read_json(await http.send(up, "POST", srv.url(), data=b"ok", **kw), "p") == {"ok": True}
            with pytest.raises(UpstreamError) as info:
                await http.send(up, "POST", srv.url(), data=b"429", **kw)
            assert info.value.retry_after == 7.0
            with pytest.raises(UpstreamError, match="broke off"):
                await http.read_json(await http.send(up, "POST", srv.url(), data=b"cut", **kw), "p")
            form = aiohttp.FormData()
            form.add_field("file", b"abc", filename="a.wav")
            assert await http.read_json(await http.send(up, "POST", srv.url("/form"), data=form, **kw), "p") == {"form": 1}
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                closed_port = s.getsockname()[1]
            with pytest.raises(UpstreamUnavailable):
                await http.send(up, "POST", f"http://127.0.0.1:{closed_port}/", data=b"", **kw)
            silent = {**kw, "timeout": http.timeout_for(5.0, 5.0, 0.2)}
            resp = await http.send(up, "POST", srv.url(), data=b"cut", **silent)
            with pytest.raises((UpstreamTimeout, UpstreamError)):
                async for _ in http.iter_body(resp, "p"):
                    pass
            await pool.close()

    run(scenario)
