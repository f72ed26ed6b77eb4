"""The Bedrock surface: 004's `/bedrock/v1/messages/{anthropic,llama,nova}?modelId=...` and the
bedrock-runtime routes `/model/{modelId}/{converse,converse-stream,invoke,invoke-with-response-stream}`
(so boto3 pointed at lmgate with a Bedrock API key works).

The model id is a configured model name. The key comes in `api-key` or `Authorization: Bearer`
(boto3 sends `AWS_BEARER_TOKEN_BEDROCK` that way). Answers come in the shapes Bedrock returns,
errors as `{"message"}` with the `x-amzn-ErrorType` header, streams in event-stream framing.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Callable

import orjson

from lmgate.errors import BadRequest, GatewayError, NotFound
from lmgate.http.asgi import Request, Response, Route, StreamingResponse
from lmgate.surfaces.base import END, Services, answer_headers, bearer, framed, until_end
from lmgate.types import ChatRequest, ChatResponse, RawChunk, RequestContext, StreamUsage, TextDelta, Usage
from lmgate.wire import anthropic as anthropic_codec
from lmgate.wire import anthropic_stream
from lmgate.wire import bedrock as codec
from lmgate.wire import bedrock_stream, eventstream
from lmgate.wire.registry import decode_raw

NAME = "bedrock"
PATH_HINTS = ("/bedrock/", "/model/")
FAMILIES = ("anthropic", "llama", "nova")


def key_of(request: Request) -> str | None:
    return request.headers.get("api-key") or bearer(request.headers)


def render_error(exc: GatewayError, request_id: str) -> Response:
    kind = codec.error_type(exc)
    headers = {"x-amzn-ErrorType": kind, "x-amzn-RequestId": request_id, "x-request-id": request_id, **exc.headers}
    return Response(exc.status, orjson.dumps({"message": exc.message}), headers)


def stream_error(exc: GatewayError) -> bytes:
    return eventstream.exception(codec.stream_exception_type(exc), exc.message)


def _ms(ctx: RequestContext) -> int:
    return int((time.monotonic() - ctx.started) * 1000)


def _headers(ctx: RequestContext, resp: ChatResponse | None) -> dict[str, str]:
    h = answer_headers(ctx, resp.cost_usd if resp is not None else None)
    h["x-amzn-RequestId"] = ctx.request_id
    if resp is not None:
        h["X-Amzn-Bedrock-Input-Token-Count"] = str(resp.usage.input_tokens)
        h["X-Amzn-Bedrock-Output-Token-Count"] = str(resp.usage.output_tokens)
        h["X-Amzn-Bedrock-Invocation-Latency"] = str(_ms(ctx))
    return h


def _parse_invoke(body: dict[str, Any], model: str) -> tuple[str, ChatRequest]:
    family = codec.invoke_family(body)
    if family == "anthropic":
        req = anthropic_codec.parse_request(body, model=model)
        req.stream = False
    elif family == "nova":
        req = codec.parse_request(body, model, native=True)
    else:
        req = codec.parse_llama(body, model)
    return family, req


def _render_invoke(family: str, resp: ChatResponse, model: str) -> dict[str, Any]:
    if family == "anthropic":
        return anthropic_codec.render_response(resp, model)
    return codec.render_nova(resp) if family == "nova" else codec.render_llama(resp)


class _Chunks:
    """InvokeModelWithResponseStream: the model's native stream events, each in a `chunk` event
    (`{"bytes": base64(json)}`), the last one carrying `amazon-bedrock-invocationMetrics`."""

    def __init__(self, family: str, model: str, ctx: RequestContext) -> None:
        self.family, self.ctx = family, ctx
        self.anthropic = anthropic_stream.EventRenderer(model=model)
        self.converse = bedrock_stream.EventRenderer()
        self.usage: Usage | None = None
        self.generated = 0  # llama: output pieces so far

    @staticmethod
    def _chunk(obj: dict[str, Any]) -> bytes:
        return eventstream.event("chunk", {"bytes": base64.b64encode(orjson.dumps(obj)).decode()})

    def _metrics(self) -> dict[str, Any]:
        u = self.usage
        return {
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": u.input_tokens if u else 0,
                "outputTokenCount": u.output_tokens if u else 0,
                "invocationLatency": _ms(self.ctx),
                "firstByteLatency": int(self.ctx.first_token_ms or 0),
            }
        }

    def render(self, ev: Any) -> bytes:
        if isinstance(ev, RawChunk):
            return b"".join(self.render(inner) for inner in decode_raw(ev))
        if isinstance(ev, StreamUsage):
            self.usage = ev.usage
        if self.family == "anthropic":  # Bedrock sends no ping events
            events = self.anthropic.finish(self._metrics()) if ev is END else self.anthropic.events(ev)
            return b"".join(self._chunk(d) for name, d in events if name != "ping")
        if self.family == "nova":
            if ev is END:
                events = self.converse.finish(_ms(self.ctx))
                objs = [{name: payload} for name, payload in events]
                objs[-1].update(self._metrics())
                return b"".join(self._chunk(o) for o in objs)
            return b"".join(self._chunk({name: payload}) for name, payload in self.converse.events(ev))
        return self._llama(ev)

    def _llama(self, ev: Any) -> bytes:
        if ev is END:
            u = self.usage
            last = {"generation": "", "prompt_token_count": None, "generation_token_count": u.output_tokens if u else self.generated, "stop_reason": "stop"}
            return self._chunk({**last, **self._metrics()})
        if isinstance(ev, TextDelta) and ev.index == 0 and ev.text:
            self.generated += 1
            return self._chunk({"generation": ev.text, "prompt_token_count": None, "generation_token_count": self.generated, "stop_reason": None})
        return b""


def routes(s: Services) -> list[Route]:
    async def _stream(ctx: RequestContext, req: ChatRequest, render: Callable[[Any], bytes]) -> StreamingResponse:
        req.stream = True
        events = await s.pipeline.chat_stream(ctx, req)
        return StreamingResponse(framed(until_end(events), render, b"", stream_error), headers=_headers(ctx, None), content_type=eventstream.CONTENT_TYPE)

    # -- 004: /bedrock/v1/messages/{family}?modelId=...

    async def messages(request: Request) -> Response:
        family = request.path_params["family"]
        if family not in FAMILIES:
            raise NotFound(f"unknown model family '{family}'; use one of {', '.join(FAMILIES)}", code="route_not_found")
        ctx = s.context(request, NAME, "chat", key_of(request))
        model = request.query.get("modelId")
        if not model:
            raise BadRequest("the modelId query parameter is required", code="missing_field", param="modelId")
        raw = await s.body(request)
        body = await s.json_body(request)
        if family == "anthropic":
            req = anthropic_codec.parse_request(body, model=model)
            req.stream = False
        else:
            req = codec.parse_request(body, model)
        req.raw_bytes = raw
        resp = await s.pipeline.chat(ctx, req)
        if family == "anthropic":
            out = anthropic_codec.render_response(resp, model)
        else:
            out = codec.render_response(resp, _ms(ctx))
        return Response(200, orjson.dumps(out), _headers(ctx, resp))

    # -- bedrock-runtime: /model/{modelId}/...

    async def read_converse(request: Request) -> tuple[RequestContext, ChatRequest]:
        ctx = s.context(request, NAME, "chat", key_of(request))
        req = codec.parse_request(await s.json_body(request), request.path_params["modelId"])
        req.raw_bytes = await s.body(request)
        return ctx, req

    async def read_invoke(request: Request) -> tuple[RequestContext, str, str, ChatRequest]:
        ctx = s.context(request, NAME, "chat", key_of(request))
        model = request.path_params["modelId"]
        family, req = _parse_invoke(await s.json_body(request), model)
        req.raw_bytes = await s.body(request)
        return ctx, model, family, req

    async def converse(request: Request) -> Response:
        ctx, req = await read_converse(request)
        resp = await s.pipeline.chat(ctx, req)
        return Response(200, orjson.dumps(codec.render_response(resp, _ms(ctx))), _headers(ctx, resp))

    async def converse_stream(request: Request) -> StreamingResponse:
        ctx, req = await read_converse(request)
        renderer = bedrock_stream.EventRenderer()

        def render(ev: Any) -> bytes:
            events = renderer.finish(_ms(ctx)) if ev is END else renderer.events(ev)
            return b"".join(eventstream.event(name, payload) for name, payload in events)

        return await _stream(ctx, req, render)

    async def invoke(request: Request) -> Response:
        ctx, model, family, req = await read_invoke(request)
        resp = await s.pipeline.chat(ctx, req)
        return Response(200, orjson.dumps(_render_invoke(family, resp, model)), _headers(ctx, resp))

    async def invoke_stream(request: Request) -> StreamingResponse:
        ctx, model, family, req = await read_invoke(request)
        chunks = _Chunks(family, model, ctx)
        response = await _stream(ctx, req, chunks.render)
        response.headers["X-Amzn-Bedrock-Content-Type"] = "application/json"
        return response

    return [
        Route("POST", "/bedrock/v1/messages/{family}", messages, NAME),
        Route("POST", "/model/{modelId:path}/converse", converse, NAME),
        Route("POST", "/model/{modelId:path}/converse-stream", converse_stream, NAME),
        Route("POST", "/model/{modelId:path}/invoke", invoke, NAME),
        Route("POST", "/model/{modelId:path}/invoke-with-response-stream", invoke_stream, NAME),
    ]
