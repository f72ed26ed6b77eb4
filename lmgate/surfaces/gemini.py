"""The Gemini surface: `/gemini/models/{model}:generateContent` (004) and the same under
`/v1beta/models/...` and `/v1/models/...` (the google-genai SDK), with `:streamGenerateContent`
(SSE with `?alt=sse`, else one streamed JSON array), `:countTokens`, `:embedContent` and
`:batchEmbedContents`.

The key comes in `api-key` (004), `x-goog-api-key` (the SDK) or `?key=`; errors come in
Google's `{"error": {"code", "message", "status"}}` shape. Any provider can answer.
"""

from __future__ import annotations

import orjson

from lmgate.catalog.tokens import estimate_chat_tokens
from lmgate.errors import GatewayError, UpstreamBadResponse
from lmgate.http.asgi import Request, Response, Route, StreamingResponse
from lmgate.surfaces.base import Services, answer_headers, bearer, framed
from lmgate.wire import gemini as codec
from lmgate.wire import gemini_embed as embed_codec
from lmgate.wire import gemini_response as answers
from lmgate.wire.gemini_stream import ChunkRenderer

NAME = "gemini"
PATH_HINTS = ("/gemini/", "/v1beta/", ":generateContent", ":streamGenerateContent", ":embedContent", ":batchEmbedContents", ":countTokens")
PREFIXES = ("/gemini/models/", "/v1beta/models/", "/v1/models/", "/gemini/v1beta/models/")


def key_of(request: Request) -> str | None:
    h = request.headers
    return h.get("api-key") or h.get("x-goog-api-key") or request.query.get("key") or bearer(h)


def render_error(exc: GatewayError, request_id: str) -> Response:
    body = answers.error_body(exc.status, exc.message, exc.code)
    return Response(exc.status, orjson.dumps(body), {"x-request-id": request_id, **exc.headers})


def _model(request: Request) -> str:
    model = request.path_params["model"]
    return model[len("models/"):] if model.startswith("models/") else model


def routes(s: Services) -> list[Route]:
    async def generate(request: Request, stream: bool) -> Response | StreamingResponse:
        model = _model(request)
        ctx = s.context(request, NAME, "chat", key_of(request))
        body = await s.json_body(request)
        req = codec.parse_generate_request(body, model, stream=stream)
        req.raw_bytes = await s.body(request)
        if stream:
            sse = request.query.get("alt") == "sse"
            events = await s.pipeline.chat_stream(ctx, req)
            renderer = ChunkRenderer(sse, model)

            def error(exc: GatewayError) -> bytes:  # an error ends the stream in Google's shape
                return renderer.error(exc.status, exc.message, exc.code)

            return StreamingResponse(
                framed(events, renderer.render, renderer.close, error), headers=answer_headers(ctx, None), content_type="text/event-stream" if sse else "application/json"
            )
        resp = await s.pipeline.chat(ctx, req)
        return Response(200, orjson.dumps(answers.render_generate_response(resp, model)), answer_headers(ctx, resp.cost_usd))

    async def generate_content(request: Request) -> Response | StreamingResponse:
        return await generate(request, False)

    async def stream_generate_content(request: Request) -> Response | StreamingResponse:
        return await generate(request, True)

    async def count_tokens(request: Request) -> Response:
        model = _model(request)
        ctx = s.context(request, NAME, "chat", key_of(request))
        s.check_model(ctx, model)
        body = await s.json_body(request)
        inner = codec.g(body, "generateContentRequest")
        if isinstance(inner, dict):
            req = codec.parse_generate_request(inner, model)
        else:
            req = codec.parse_generate_request({"contents": codec.g(body, "contents")}, model)
        total = estimate_chat_tokens(req)
        return Response(200, orjson.dumps({"totalTokens": total}), {"x-request-id": ctx.request_id})

    async def embed(request: Request, batch: bool) -> Response:
        model = _model(request)
        ctx = s.context(request, NAME, "embeddings", key_of(request))
        req = embed_codec.parse_embed_request(await s.json_body(request), model, batch)
        resp = await s.pipeline.embed(ctx, req)
        if len(resp.vectors) != len(req.inputs):
            raise UpstreamBadResponse("the upstream returned a different number of embeddings than inputs")
        return Response(200, orjson.dumps(embed_codec.render_embed_response(resp, batch)), answer_headers(ctx, resp.cost_usd))

    async def embed_content(request: Request) -> Response:
        return await embed(request, False)

    async def batch_embed_contents(request: Request) -> Response:
        return await embed(request, True)

    table = [
        (":generateContent", generate_content),
        (":streamGenerateContent", stream_generate_content),
        (":countTokens", count_tokens),
        (":embedContent", embed_content),
        (":batchEmbedContents", batch_embed_contents),
    ]
    return [Route("POST", prefix + "{model:any}" + action, handler, NAME) for prefix in PREFIXES for action, handler in table]
