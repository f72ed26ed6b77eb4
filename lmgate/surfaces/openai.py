"""The OpenAI surface: /v1/... (and the same under /api/v1), Bearer or api-key."""

from __future__ import annotations

import orjson

from lmgate.errors import BadRequest, GatewayError
from lmgate.http.asgi import Request, Response, Route, StreamingResponse
from lmgate.policy.auth import model_allowed
from lmgate.surfaces.base import Services, answer_headers, bearer, framed
from lmgate.types import ChatRequest, ImageRequest, RequestContext, TranscriptionRequest
from lmgate.wire import fields as f
from lmgate.wire import openai as codec

NAME = "openai"
PREFIXES = ("/v1", "/api/v1")


def key_of(request: Request) -> str | None:
    return bearer(request.headers) or request.headers.get("api-key")


def render_error(exc: GatewayError, request_id: str) -> Response:
    body = codec.error_body(exc.message, exc.type, exc.code, exc.param)
    return Response(exc.status, orjson.dumps(body), {"x-request-id": request_id, **exc.headers})


def stream_error(exc: GatewayError) -> bytes:
    return b"data: " + orjson.dumps(codec.error_body(exc.message, exc.type, exc.code, exc.param)) + b"\n\n"


async def answer_chat(s: Services, ctx: RequestContext, req: ChatRequest) -> Response | StreamingResponse:
    """A parsed chat request answered in OpenAI's shape, whole or streamed (the Azure surface's too)."""
    if req.stream:
        events = await s.pipeline.chat_stream(ctx, req)
        renderer = codec.ChunkRenderer(req.include_usage)
        return StreamingResponse(framed(events, renderer.render, b"data: [DONE]\n\n", stream_error), headers=answer_headers(ctx, None))
    resp = await s.pipeline.chat(ctx, req)
    return Response(200, orjson.dumps(codec.render_chat_response(resp)), answer_headers(ctx, resp.cost_usd))


async def answer_images(s: Services, ctx: RequestContext, req: ImageRequest) -> Response:
    resp = await s.pipeline.images(ctx, req)
    out = {"created": resp.created, "data": resp.images, "usage": {"estimated_cost": resp.cost_usd}}
    return Response(200, orjson.dumps(out), answer_headers(ctx, resp.cost_usd))


async def answer_transcription(s: Services, ctx: RequestContext, req: TranscriptionRequest) -> Response:
    resp = await s.pipeline.transcribe(ctx, req)
    return Response(200, resp.body, answer_headers(ctx, resp.cost_usd), content_type=resp.content_type)


def routes(s: Services) -> list[Route]:
    async def models(request: Request) -> Response:
        ctx = s.context(request, NAME, "models", key_of(request))
        data = [
            {"id": name, "object": "model", "created": 1677610602, "owned_by": route.info.family or "lmgate"}
            for name, route in s.router.routes.items()
            if ctx.key is None or model_allowed(ctx.key, name)
        ]
        return Response(200, orjson.dumps({"object": "list", "data": data}), {"x-request-id": ctx.request_id})

    async def chat(request: Request) -> Response | StreamingResponse:
        ctx = s.context(request, NAME, "chat", key_of(request))
        body = await s.body(request)
        req = codec.parse_chat_request(await s.json_body(request))
        req.raw_bytes = body
        return await answer_chat(s, ctx, req)

    async def embeddings(request: Request) -> Response:
        ctx = s.context(request, NAME, "embeddings", key_of(request))
        req = codec.parse_embedding_request(await s.json_body(request))
        resp = await s.pipeline.embed(ctx, req)
        if resp.raw_format == codec.FORMAT and resp.raw is not None and req.encoding_format != "base64" and "encodingFormat" not in (req.raw or {}):
            body = resp.raw
            usage = body.setdefault("usage", {})
            if isinstance(usage, dict):
                usage["estimated_cost"] = resp.cost_usd
        else:
            body = codec.render_embedding_response(resp, req.model, req.encoding_format)
        return Response(200, orjson.dumps(body), answer_headers(ctx, resp.cost_usd))

    async def images(request: Request) -> Response:
        ctx = s.context(request, NAME, "images", key_of(request))
        return await answer_images(s, ctx, parse_image_request(await s.json_body(request)))

    async def transcriptions(request: Request) -> Response:
        ctx = s.context(request, NAME, "audio", key_of(request))
        return await answer_transcription(s, ctx, await parse_transcription_request(request, s))

    table = [
        ("GET", "/models", models),
        ("POST", "/chat/completions", chat),
        ("POST", "/embeddings", embeddings),
        ("POST", "/images/generations", images),
        ("POST", "/audio/transcriptions", transcriptions),
    ]
    return [Route(method, prefix + path, handler, NAME) for prefix in PREFIXES for method, path, handler in table]


def parse_image_request(body: dict) -> ImageRequest:
    n = f.positive_int(body, "n") or 1
    known = {"model", "prompt", "n", "size", "quality", "style", "response_format", "user"}
    return ImageRequest(
        model=f.require(body, "model", str),
        prompt=f.require(body, "prompt", str),
        n=n,
        size=f.optional(body, "size", str),
        quality=f.optional(body, "quality", str),
        style=f.optional(body, "style", str),
        response_format=f.optional(body, "response_format", str),
        user=f.optional(body, "user", str),
        extra={k: v for k, v in body.items() if k not in known},
    )


async def parse_transcription_request(request: Request, s: Services, model: str | None = None) -> TranscriptionRequest:
    """The multipart/form-data upload of /audio/transcriptions (`model`: the Azure deployment in the path)."""
    from lmgate.http.multipart import parse_form

    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise BadRequest("audio transcriptions take a multipart/form-data upload", code="invalid_content_type")
    fields, files = parse_form(ctype, await s.body(request))
    upload = files.get("file")
    if upload is None:
        raise BadRequest("missing required field 'file'", code="missing_field", param="file")
    model = model or fields.get("model")
    if not model:
        raise BadRequest("missing required field 'model'", code="missing_field", param="model")
    fmt = fields.get("response_format", "json")
    if fmt not in ("json", "text", "verbose_json", "srt", "vtt"):
        raise BadRequest("response_format must be one of json, text, verbose_json, srt, vtt", param="response_format")
    temperature = fields.get("temperature")
    try:
        temp = float(temperature) if temperature not in (None, "") else None
    except ValueError:
        raise BadRequest("temperature must be a number", param="temperature") from None
    known = {"model", "response_format", "temperature", "language", "prompt"}
    return TranscriptionRequest(
        model=model,
        file=upload[1],
        filename=upload[0],
        content_type=upload[2],
        language=fields.get("language"),
        prompt=fields.get("prompt"),
        response_format=fmt,
        temperature=temp,
        extra={k: v for k, v in fields.items() if k not in known},
    )
