"""The one pooled HTTP path every provider uses.

One upstream client per provider (keep-alive, bounded connections), created inside the running
event loop on first use: lmgate's own small client (fasthttp) for bytes bodies, aiohttp for
multipart uploads; upstream failures become lmgate errors here, once, for every provider.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import aiohttp
import orjson
import yarl

from lmgate.errors import (
    ContentFiltered,
    ContextLengthExceeded,
    GatewayError,
    UpstreamAuthError,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    client_error_from_upstream,
)
from lmgate.providers import fasthttp

# What send() returns: the fast client's response, or aiohttp's for a multipart upload.
Response = fasthttp.Response | aiohttp.ClientResponse


@dataclass(slots=True)
class UpstreamFailure:
    """What a provider learned from an upstream error body, before mapping to an lmgate error."""

    status: int
    message: str
    code: str | None = None  # e.g. context_length_exceeded, content_filter
    retry_after: float | None = None


class Upstream:
    """One provider's clients: the fast pooled client for bytes bodies, and an aiohttp session
    (made on first use) for what it does not do, multipart uploads."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.fast = fasthttp.Client(max_connections)
        self._aio: aiohttp.ClientSession | None = None

    @property
    def closed(self) -> bool:
        return self.fast.closed

    def aio(self) -> aiohttp.ClientSession:
        if self._aio is None or self._aio.closed:
            n = self.max_connections
            connector = aiohttp.TCPConnector(limit=n, limit_per_host=n, keepalive_timeout=60, ttl_dns_cache=300)
            self._aio = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # upstream cookies must never leak between callers
                json_serialize=lambda o: orjson.dumps(o).decode(),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._aio

    async def close(self) -> None:
        await self.fast.close()
        if self._aio is not None:
            await self._aio.close()


class HttpPool:
    """Upstream clients keyed by provider name, closed together at shutdown."""

    def __init__(self) -> None:
        self._sessions: dict[str, Upstream] = {}

    def session(self, name: str, max_connections: int = 256) -> Upstream:
        s = self._sessions.get(name)
        if s is None or s.closed:
            s = self._sessions[name] = Upstream(max_connections)
        return s

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            await s.close()


@functools.lru_cache(maxsize=256)
def timeout_for(total: float, connect: float, idle: float | None = None) -> aiohttp.ClientTimeout:
    """Whole calls: `total`; streams: `idle` between chunks (the first-byte wait is bounded by the pipeline)."""
    return aiohttp.ClientTimeout(total=None if idle else total, connect=connect, sock_connect=connect, sock_read=idle or total)


async def send(
    session: Upstream,
    method: str,
    url: str | yarl.URL,
    *,
    data: bytes | aiohttp.FormData | None,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
    parse_error: Callable[[int, bytes, Any], UpstreamFailure],
    redact: Callable[[str], str],
    provider: str,
) -> Response:
    """Send one request; return the response on 2xx, else raise the mapped lmgate error.
    Bytes go through the fast client; a multipart form through aiohttp."""
    resp: Response
    try:
        if isinstance(data, aiohttp.FormData):
            resp = await session.aio().request(method, url, data=data, headers=headers, timeout=timeout, allow_redirects=False)
        else:
            resp = await session.fast.request(method, url, headers=headers, body=data or b"", timeout=timeout)
    except asyncio.TimeoutError:
        raise UpstreamTimeout(f"provider {provider} did not answer in time") from None
    except (fasthttp.ConnectError, aiohttp.ClientConnectorError):
        raise UpstreamUnavailable(f"provider {provider} could not be reached") from None
    except (fasthttp.HttpError, aiohttp.ClientError) as exc:
        raise UpstreamError(f"provider {provider} failed: {type(exc).__name__}") from None
    if resp.status < 300:
        return resp
    try:
        body = await resp.read()
    except (fasthttp.HttpError, aiohttp.ClientError, asyncio.TimeoutError):
        body = b""
    finally:
        resp.release()
    failure = parse_error(resp.status, body, resp.headers)
    if failure.retry_after is None:
        failure.retry_after = retry_after_of(resp.headers)
    raise map_failure(failure, provider, redact)


async def read_json(resp: Response, provider: str) -> Any:
    try:
        body = await resp.read()
    except asyncio.TimeoutError:
        raise UpstreamTimeout(f"provider {provider} did not finish its answer in time") from None
    except (fasthttp.HttpError, aiohttp.ClientError):
        raise UpstreamError(f"provider {provider} broke off its answer") from None
    finally:
        resp.release()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"provider {provider} answered with something that is not JSON") from None


def json_object(data: bytes, provider: str, what: str) -> dict[str, Any]:
    """One streamed JSON object (`what`: "stream chunk", "stream event"); anything else is the upstream's fault."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"provider {provider} sent a {what} that is not JSON") from None
    if not isinstance(value, dict):
        raise UpstreamBadResponse(f"provider {provider} sent a {what} that is not an object")
    return value


def iter_body(resp: Response, provider: str) -> AsyncIterator[bytes]:
    """The response body as it arrives; a cut or a silence becomes an lmgate error."""
    return BodyPieces(resp, provider)


class BodyPieces:
    """iter_body's iterator. The response is released at the end, on an error, on `aclose()`, or
    when the reader drops the iterator half-way (a stream stops reading at `[DONE]`). A class, not
    an async generator: an abandoned generator is closed by a task the loop creates for it, one
    per stream."""

    __slots__ = ("_resp", "_pieces", "_provider")

    def __init__(self, resp: Response, provider: str) -> None:
        self._resp: Response | None = resp
        self._pieces = resp.content.iter_any().__aiter__()
        self._provider = provider

    def __aiter__(self) -> BodyPieces:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._pieces.__anext__()
        except StopAsyncIteration:
            self.close()
            raise
        except asyncio.TimeoutError:
            self.close()
            raise UpstreamTimeout(f"provider {self._provider} went silent mid-stream") from None
        except (fasthttp.HttpError, aiohttp.ClientError):
            self.close()
            raise UpstreamError(f"provider {self._provider} broke off the stream") from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.release()

    async def aclose(self) -> None:
        self.close()

    __del__ = close


def retry_after_of(headers: Any) -> float | None:
    for name in ("retry-after-ms", "Retry-After", "x-ratelimit-reset-requests"):
        value = headers.get(name) if headers is not None else None
        if value:
            try:
                seconds = float(value)
            except ValueError:
                continue
            return seconds / 1000 if name == "retry-after-ms" else seconds
    return None


def map_failure(f: UpstreamFailure, provider: str, redact: Callable[[str], str]) -> GatewayError:
    """An upstream's refusal as lmgate's own error; its text is redacted, never relayed raw."""
    msg = redact(f.message) if f.message else ""
    detail = f": {msg}" if msg else ""
    if f.code == "context_length_exceeded":
        return ContextLengthExceeded(f"the prompt is too long for the model{detail}")
    if f.code == "content_filter":
        return ContentFiltered(f"the upstream's content filter refused the prompt{detail}")
    if f.status == 429:
        return UpstreamRateLimited(f"provider {provider} is rate limiting lmgate", retry_after=f.retry_after)
    if f.status in (401, 403):
        return UpstreamAuthError(f"provider {provider} refused lmgate's credentials")
    if f.status in (408, 504):
        return UpstreamTimeout(f"provider {provider} timed out")
    if f.status in (503, 529):
        return UpstreamOverloaded(f"provider {provider} is overloaded", retry_after=f.retry_after)
    if f.status >= 500:
        return UpstreamError(f"provider {provider} failed with status {f.status}")
    if f.status == 404:
        return UpstreamError(f"provider {provider} does not know this model or route{detail}", status=502, code="upstream_not_found")
    return client_error_from_upstream(f.status, f"the upstream refused the request{detail}", f.code)
