"""What every surface shares: the services it calls, reading keys and bodies, answer headers.

A surface module exposes `NAME`, `routes(services) -> list[Route]` and
`render_error(exc, request_id) -> Response`; app.py joins them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import orjson

from lmgate.config import ServerConfig
from lmgate.errors import BadRequest, GatewayError, PayloadTooLarge
from lmgate.http.asgi import BodyTooLarge, Request
from lmgate.pipeline import Pipeline
from lmgate.policy.auth import KeyIndex, check_model_allowed
from lmgate.policy.options import parse_suffix, resolve_options, split_key
from lmgate.routing.router import Router
from lmgate.types import RequestContext


@dataclass(slots=True)
class Services:
    """The gateway as surfaces see it."""

    pipeline: Pipeline
    keys: KeyIndex
    router: Router
    server: ServerConfig

    def context(self, request: Request, surface: str, endpoint: str, raw_key: str | None) -> RequestContext:
        """Authenticate the caller and resolve its options (key defaults, suffix, headers)."""
        started = time.monotonic()
        key_value, suffix = split_key(raw_key or "")
        key = self.keys.authenticate(key_value)
        options = resolve_options(
            key,
            parse_suffix(suffix, self.server.max_key_options_bytes) if suffix else None,
            request.headers,
            self.server.default_cache,
            self.server.default_guard,
        )
        return RequestContext(request.request_id, surface, endpoint, started, time.time(), key=key, options=options)

    def check_model(self, ctx: RequestContext, model: str) -> None:
        """For answers lmgate gives itself (token counts): the model exists (404) and the key may
        use it (403), as the pipeline checks for everything else."""
        self.router.route(model)
        if ctx.key is not None:
            check_model_allowed(ctx.key, model)

    async def json_body(self, request: Request) -> dict[str, Any]:
        raw = await self.body(request)
        if not raw:
            raise BadRequest("the request body is empty; send a JSON object", code="invalid_json")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the request body is not valid JSON ({exc.msg} at position {exc.pos})", code="invalid_json") from None
        if not isinstance(data, dict):
            raise BadRequest("the request body must be a JSON object", code="invalid_json")
        return data

    async def body(self, request: Request) -> bytes:
        try:
            return await request.body(self.server.max_body_bytes)
        except BodyTooLarge:
            raise PayloadTooLarge(f"the request body is larger than {self.server.max_body_bytes} bytes") from None


def bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def answer_headers(ctx: RequestContext, cost: float | None) -> dict[str, str]:
    """x-request-id, x-lmgate-cache, x-lmgate-cost, which model and deployment served, policy headers."""
    h = {"x-request-id": ctx.request_id, "x-lmgate-cache": ctx.cache_status}
    if cost is not None:
        h["x-lmgate-cost"] = f"{cost:.10f}".rstrip("0").rstrip(".") if cost else "0"
    if ctx.served_model:
        h["x-lmgate-model"] = ctx.served_model
    if ctx.deployment:
        h["x-lmgate-deployment"] = ctx.deployment
    if ctx.warnings:
        h["warning"] = "; ".join(f'299 lmgate "{w}"' for w in ctx.warnings)
        h["x-lmgate-warning"] = "; ".join(ctx.warnings)
    if ctx.response_headers:
        h.update(ctx.response_headers)
    return h


async def _aclose(events: AsyncIterator[Any]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


async def framed(
    events: AsyncIterator[Any],
    render: Callable[[Any], bytes],
    close: bytes | Callable[[], bytes],
    error: Callable[[GatewayError], bytes],
) -> AsyncIterator[bytes]:
    """A surface's stream: rendered events, then `close` on success or an error frame (never a fake close).

    `close` may be a function, for framings whose ending depends on what was sent."""
    try:
        async for ev in events:
            data = render(ev)
            if data:
                yield data
    except GatewayError as exc:
        yield error(exc)
        return
    finally:
        await _aclose(events)
    if callable(close):
        close = close()
    if close:
        yield close


END = object()  # marks a stream that ended well, so a renderer can close the message


async def until_end(events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The events, then END once they ran out without an error."""
    try:
        async for ev in events:
            yield ev
        yield END
    finally:
        await _aclose(events)
