"""Azure OpenAI: `/openai/deployments/{deployment}/...?api-version=` with the `api-key` header.

The body is OpenAI's; the differences are the path, the key header, the required api-version,
Azure's own error shape at its front door, and the content-filter annotations.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lmgate.simulator.common import SimError, json_response, read_json
from lmgate.simulator.openai import chat_answer
from lmgate.simulator.openai_errors import azure_error, check_azure_auth
from lmgate.simulator.openai_extra import embeddings_answer, images_answer, transcription_answer

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def _check_api_version(request: web.Request) -> str:
    version = request.query.get("api-version")
    if version is None:
        raise SimError(404, "Resource not found")
    if not _API_VERSION.match(version):
        raise SimError(400, "API version not supported", code="BadRequest")
    return version


def _azure_route(
    answer: Callable[[web.Request, Any, str], Awaitable[web.StreamResponse]], json_body: bool
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        deployment = request.match_info["deployment"]
        version = ""
        try:
            version = _check_api_version(request)
            check_azure_auth(request)
            body = None
            if json_body:
                try:
                    body = await read_json(request)
                except ValueError:
                    body = None
            return await answer(request, body, deployment)
        except SimError as err:
            if err.code == "BadRequest":
                return json_response({"error": {"code": "BadRequest", "message": err.message}},
                                     status=400)
            return azure_error(err, deployment, version)

    return handler


async def _chat(request: web.Request, body: Any, deployment: str) -> web.StreamResponse:
    return await chat_answer(request, body, model=deployment, azure=True)


async def _embeddings(request: web.Request, body: Any, deployment: str) -> web.StreamResponse:
    return await embeddings_answer(request, body, deployment)


async def _images(request: web.Request, body: Any, deployment: str) -> web.StreamResponse:
    model = body.get("model") if isinstance(body, dict) and body.get("model") else deployment
    return await images_answer(request, body, model, azure=True)


async def _audio(request: web.Request, body: Any, deployment: str) -> web.StreamResponse:
    return await transcription_answer(request, deployment)


_BASE = "/openai/deployments/{deployment}"
ROUTES = [
    ("POST", _BASE + "/chat/completions", _azure_route(_chat, True)),
    ("POST", _BASE + "/embeddings", _azure_route(_embeddings, True)),
    ("POST", _BASE + "/images/generations", _azure_route(_images, True)),
    ("POST", _BASE + "/audio/transcriptions", _azure_route(_audio, False)),
]
