"""A small raw-ASGI toolkit: request, responses and a route table.

lmgate speaks ASGI directly (no framework) because the hot path must cost little more than a
bare proxy: one dict lookup for static routes, no middleware stack, headers as bytes.
"""

from __future__ import annotations

import asyncio
import re
import types
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl, unquote

import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class ClientDisconnected(Exception):
    pass


class Request:
    """One inbound HTTP request. Headers are decoded lazily into a lower-case dict."""

    __slots__ = ("scope", "receive", "method", "path", "path_params", "request_id", "_headers", "_query", "_body")

    def __init__(self, scope: Scope, receive: Receive, path: str) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path = path
        self.path_params: dict[str, str] = {}
        self.request_id = ""
        self._headers: dict[str, str] | None = None
        self._query: dict[str, str] | None = None
        self._body: bytes | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.scope["headers"]}
        return self._headers

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            qs = self.scope.get("query_string", b"")
            self._query = dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True)) if qs else {}
        return self._query

    async def body(self, limit: int) -> bytes:
        """The whole body, refusing more than `limit` bytes (checked on Content-Length first)."""
        if self._body is not None:
            return self._body
        for k, v in self.scope["headers"]:
            if k == b"content-length":
                try:
                    if int(v) > limit:
                        raise BodyTooLarge()
                except ValueError:
                    pass
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge()
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._body


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    async def send(self, send: Send) -> None:
        raw = [(b"content-type", self.content_type.encode()), (b"content-length", str(len(self.body)).encode())]
        raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items())
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(data), headers or {})


# A stream's pieces are written together while more are ready without waiting, up to this size.
COALESCE_BYTES = 64 * 1024


@dataclass(slots=True)
class StreamingResponse:
    """A body sent piece by piece as the iterator yields (SSE, event-stream, JSON arrays).

    Pieces that are ready at once (the frames cut from one upstream read, the usage frame and the
    closing `[DONE]` after the last one) go out in one write: the next piece is asked for first,
    and what is held is written only when that would have to wait. Each write is a system call
    and a packet for the client to wake up for, so a 51-frame stream read in one go costs two
    writes (head, body with the chunked terminator) instead of six. A piece is never held while
    the stream waits for the upstream.
    """

    chunks: AsyncIterator[bytes]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream"

    async def send(self, send: Send, receive: Receive | None = None) -> None:
        """With `receive`, a client that disconnects cancels the stream (and so the upstream call) at
        once: the server's `send` silently drops bytes for a closed connection, so nothing else would."""
        raw = [(b"content-type", self.content_type.encode()), (b"cache-control", b"no-cache")]
        raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items())
        started = finished = False
        held: list[bytes] = []
        held_bytes = 0
        task: asyncio.Task[Any] | None = None

        async def watch() -> bool:
            while (await receive())["type"] != "http.disconnect":  # type: ignore[misc]
                pass
            if not finished and task is not None:
                task.cancel()
                return True
            return False

        async def write(more: bool) -> None:
            nonlocal started, held_bytes
            if not started:
                started = True
                await send({"type": "http.response.start", "status": self.status, "headers": raw})
            if held or not more:
                body = held[0] if len(held) == 1 else b"".join(held)
                held.clear()
                held_bytes = 0
                await send({"type": "http.response.body", "body": body, "more_body": more})

        # The watcher starts at the stream's first wait: a stream that never waits (its upstream
        # answered in one read) is written at once, and a task per such stream would be waste.
        watcher: asyncio.Future[bool] | None = None
        try:
            pieces = self.chunks.__aiter__()
            while True:
                step = pieces.__anext__()
                try:
                    waiting = step.send(None)  # run the producer up to its first real wait
                except StopIteration as ready:
                    chunk = ready.value
                else:
                    if watcher is None and receive is not None:
                        task = asyncio.current_task()
                        watcher = asyncio.ensure_future(watch())
                    try:
                        await write(True)  # it has to wait: what is held goes out first
                    except BaseException as exc:  # unwind the producer where it waits, as an await would have
                        await _resume(step, None, exc, quiet=True)
                        raise
                    chunk = await _resume(step, waiting)
                if chunk:
                    held.append(chunk)
                    held_bytes += len(chunk)
                    if held_bytes >= COALESCE_BYTES:
                        await write(True)
        except StopAsyncIteration:
            finished = True
            await write(False)
        except asyncio.CancelledError:
            if watcher is not None and watcher.done() and not watcher.cancelled() and watcher.result() and task is not None:
                task.uncancel()
                raise ClientDisconnected() from None
            raise
        except OSError as exc:  # the client went away mid-stream
            raise ClientDisconnected() from exc
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()


@types.coroutine
def _resume(step: Any, waiting: Any, error: BaseException | None = None, quiet: bool = False) -> Any:
    """Finish an awaitable that was stepped by hand until its first wait: hand that wait (and any
    later ones) to the task, as `await step` would have, passing results and cancellation through.
    With `error`, it is thrown in first; `quiet` swallows what the awaitable then raises (the
    caller re-raises its own error)."""
    try:
        if error is not None:
            waiting = step.throw(error)
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                try:
                    step.throw(GeneratorExit)
                except (GeneratorExit, StopIteration, StopAsyncIteration):
                    pass
                raise
            except BaseException as exc:
                waiting = step.throw(exc)
            else:
                waiting = step.send(sent)
    except StopIteration as done:
        return done.value
    except BaseException:
        if not quiet:
            raise
    return None


Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One URL pattern: `{name}` matches one segment, `{name:path}` the rest, `{name:any}` any text
    without a slash (for Google's `models/{model}:generateContent` style)."""

    method: str
    pattern: str
    handler: Handler
    name: str = ""


@dataclass(slots=True)
class _Compiled:
    regex: re.Pattern[str]
    routes: dict[str, Route]


class Router:
    """Static paths resolve with one dict lookup; patterned ones by regex in declaration order."""

    def __init__(self, routes: list[Route]) -> None:
        self._static: dict[str, dict[str, Route]] = {}
        self._dynamic: list[_Compiled] = []
        by_pattern: dict[str, dict[str, Route]] = {}
        for r in routes:
            by_pattern.setdefault(r.pattern, {})[r.method] = r
        for pattern, methods in by_pattern.items():
            if "{" not in pattern:
                self._static[pattern] = methods
            else:
                self._dynamic.append(_Compiled(_compile(pattern), methods))

    def match(self, path: str) -> tuple[dict[str, Route], dict[str, str]] | None:
        found = self._static.get(path)
        if found is not None:
            return found, {}
        for c in self._dynamic:
            m = c.regex.fullmatch(path)
            if m:
                return c.routes, {k: unquote(v) for k, v in m.groupdict().items()}
        return None


def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    for piece in re.split(r"(\{[^}]+\})", pattern):
        if piece.startswith("{") and piece.endswith("}"):
            name, _, kind = piece[1:-1].partition(":")
            out.append(f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+?)" if kind == "any" else f"(?P<{name}>[^/:]+)")
        else:
            out.append(re.escape(piece))
    return re.compile("".join(out))
