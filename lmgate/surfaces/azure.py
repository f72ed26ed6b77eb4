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
from lmgate.surfaces.base import Services, answer_headers, bearer
from lmgate.types import RequestContext
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
    async def open_json(request: Request, endpoint: str) -> tuple[str, RequestContext, dict, bool]:
        """The deployment, the caller, and the body with the deployment as its model (and whether
        the body already named it, so it may be forwarded as it came)."""
        deployment = _deployment(request)
        ctx = s.context(request, NAME, endpoint, key_of(request))
        body = await s.json_body(request)
        same = body.get("model") == deployment
        body["model"] = deployment
        return deployment, ctx, body, same

    async def chat(request: Request) -> Response | StreamingResponse:
        _, ctx, body, same = await open_json(request, "chat")
        req = codec.parse_chat_request(body)
        if same:
            req.raw_bytes = await s.body(request)
        return await openai_surface.answer_chat(s, ctx, req)

    async def embeddings(request: Request) -> Response:
        deployment, ctx, body, _ = await open_json(request, "embeddings")
        req = codec.parse_embedding_request(body)
        resp = await s.pipeline.embed(ctx, req)
        out = codec.render_embedding_response(resp, deployment, req.encoding_format)
        return Response(200, orjson.dumps(out), answer_headers(ctx, resp.cost_usd))

    async def images(request: Request) -> Response:
        _, ctx, body, _ = await open_json(request, "images")
        return await openai_surface.answer_images(s, ctx, openai_surface.parse_image_request(body))

    async def transcriptions(request: Request) -> Response:
        deployment = _deployment(request)
        ctx = s.context(request, NAME, "audio", key_of(request))
        req = await openai_surface.parse_transcription_request(request, s, model=deployment)
        return await openai_surface.answer_transcription(s, ctx, req)

    table = [
        ("/chat/completions", chat),
        ("/embeddings", embeddings),
        ("/images/generations", images),
        ("/audio/transcriptions", transcriptions),
    ]
    return [Route("POST", prefix + path, handler, NAME) for prefix in PREFIXES for path, handler in table]
