"""The Anthropic surface: `POST /v1/messages` (whole and streamed) and `/v1/messages/count_tokens`.

The key comes in `x-api-key` (what the anthropic SDK sends) or `Authorization: Bearer`; errors
come in Anthropic's `{"type": "error", "error": {"type", "message"}}` shape.
"""

from __future__ import annotations

from typing import Any

import orjson

from lmgate.catalog.tokens import estimate_chat_tokens
from lmgate.errors import GatewayError
from lmgate.http.asgi import Request, Response, Route, StreamingResponse
from lmgate.surfaces.base import END, Services, answer_headers, bearer, framed, until_end
from lmgate.wire import anthropic as codec
from lmgate.wire import anthropic_stream as sse

NAME = "anthropic"
PATH_HINTS = ("/v1/messages",)

def key_of(request: Request) -> str | None:
    return request.headers.get("x-api-key") or bearer(request.headers)


def render_error(exc: GatewayError, request_id: str) -> Response:
    body = codec.error_body(exc, request_id)
    return Response(exc.status, orjson.dumps(body), {"x-request-id": request_id, "request-id": request_id, **exc.headers})


def stream_error(exc: GatewayError) -> bytes:
    return sse.error_event(codec.error_body(exc))


def routes(s: Services) -> list[Route]:
    async def messages(request: Request) -> Response | StreamingResponse:
        ctx = s.context(request, NAME, "chat", key_of(request))
        raw = await s.body(request)
        req = codec.parse_request(await s.json_body(request))
        req.raw_bytes = raw
        if req.stream:
            events = await s.pipeline.chat_stream(ctx, req)
            renderer = sse.EventRenderer(model=req.model)

            def render(ev: Any) -> bytes:
                return sse.sse(renderer.finish() if ev is END else renderer.events(ev))

            headers = {**answer_headers(ctx, None), "request-id": ctx.request_id}
            return StreamingResponse(framed(until_end(events), render, b"", stream_error), headers=headers)
        resp = await s.pipeline.chat(ctx, req)
        body = codec.render_response(resp, req.model)
        return Response(200, orjson.dumps(body), {**answer_headers(ctx, resp.cost_usd), "request-id": ctx.request_id})

    async def count_tokens(request: Request) -> Response:
        ctx = s.context(request, NAME, "count_tokens", key_of(request))
        body = await s.json_body(request)
        req = codec.parse_request({**body, "max_tokens": body.get("max_tokens") or 1})
        s.check_model(ctx, req.model)  # an unknown model is a 404, as Anthropic answers
        return Response(200, orjson.dumps({"input_tokens": estimate_chat_tokens(req)}), {"x-request-id": ctx.request_id, "request-id": ctx.request_id})

    return [
        Route("POST", "/v1/messages", messages, NAME),
        Route("POST", "/v1/messages/count_tokens", count_tokens, NAME),
    ]
