"""The Azure OpenAI surface: `/azure/openai/deployments/{deployment}/...?api-version=` (and the same
without `/azure`), so `openai.AzureOpenAI(azure_endpoint=GATEWAY + "/proxy/api/v1/azure", ...)` works.

The deployment in the path is the client-facing model (a `model` in the body is ignored, as
Azure does); the key is in `api-key` (or a Bearer token); `api-version` is required, as Azure
requires it, and answers a missing one with Azure's 404. Bodies, answers and errors are
OpenAI's: the OpenAI codec and surface renderers are reused.
"""

from __future__ import annotations

import orjson

from lmgate.errors import GatewayError, NotFound
from lmgate.http.asgi import Request, Response, Route, StreamingResponse
from lmgate.surfaces import openai as openai_surface
from lmgate.surfaces.base import Services, answer_headers, bearer, framed
from lmgate.wire import openai as codec

NAME = "azure"
PATH_HINTS = ("/openai/deployments/",)
PREFIXES = ("/azure/openai/deployments/{deployment}", "/openai/deployments/{deployment}")


def key_of(request: Request) -> str | None:
    return request.headers.get("api-key") or bearer(request.headers)


def render_error(exc: GatewayError, request_id: str) -> Response:
    """Azure's model errors are OpenAI's shape (what the AzureOpenAI SDK reads)."""
    return openai_surface.render_error(exc, request_id)


def _deployment(request: Request) -> str:
    """The deployment of the path, once api-version is checked (Azure: 404 without it)."""
    if not request.query.get("api-version"):
        raise NotFound("Resource not found: the api-version query parameter is required", code="404")
    return request.path_params["deployment"]


def routes(s: Services) -> list[Route]:
    async def json_with_model(request: Request, deployment: str) -> tuple[dict, bool]:
        body = await s.json_body(request)
        same = body.get("model") == deployment
        body["model"] = deployment
        return body, same

    async def chat(request: Request) -> Response | StreamingResponse:
        deployment = _deployment(request)
        ctx = s.context(request, NAME, "chat", key_of(request))
        body, same = await json_with_model(request, deployment)
        req = codec.parse_chat_request(body)
        if same:
            req.raw_bytes = await s.body(request)
        if req.stream:
            events = await s.pipeline.chat_stream(ctx, req)
            renderer = codec.ChunkRenderer(req.include_usage)
            return StreamingResponse(
                framed(events, renderer.render, b"data: [DONE]\n\n", openai_surface.stream_error), headers=answer_headers(ctx, None)
            )
        resp = await s.pipeline.chat(ctx, req)
        return Response(200, orjson.dumps(codec.render_chat_response(resp)), answer_headers(ctx, resp.cost_usd))

    async def embeddings(request: Request) -> Response:
        deployment = _deployment(request)
        ctx = s.context(request, NAME, "embeddings", key_of(request))
        body, _ = await json_with_model(request, deployment)
        req = codec.parse_embedding_request(body)
        resp = await s.pipeline.embed(ctx, req)
        out = codec.render_embedding_response(resp, deployment, req.encoding_format)
        return Response(200, orjson.dumps(out), answer_headers(ctx, resp.cost_usd))

    async def images(request: Request) -> Response:
        deployment = _deployment(request)
        ctx = s.context(request, NAME, "images", key_of(request))
        body, _ = await json_with_model(request, deployment)
        req = openai_surface.parse_image_request(body)
        resp = await s.pipeline.images(ctx, req)
        out = {"created": resp.created, "data": resp.images, "usage": {"estimated_cost": resp.cost_usd}}
        return Response(200, orjson.dumps(out), answer_headers(ctx, resp.cost_usd))

    async def transcriptions(request: Request) -> Response:
        deployment = _deployment(request)
        ctx = s.context(request, NAME, "audio", key_of(request))
        req = await openai_surface.parse_transcription_request(request, s, model=deployment)
        resp = await s.pipeline.transcribe(ctx, req)
        return Response(200, resp.body, answer_headers(ctx, resp.cost_usd), content_type=resp.content_type)

    table = [
        ("/chat/completions", chat),
        ("/embeddings", embeddings),
        ("/images/generations", images),
        ("/audio/transcriptions", transcriptions),
    ]
    return [Route("POST", prefix + path, handler, NAME) for prefix in PREFIXES for path, handler in table]
