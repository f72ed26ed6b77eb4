"""Cohere embeddings: `POST {base}/v2/embed` with a Bearer key.

More than 96 texts are split into calls of at most 96, sent concurrently and rejoined in order;
usage is the sum of each call's `meta.billed_units.input_tokens`.
"""

from __future__ import annotations

from typing import Any

import orjson

from lmgate.config import ProviderConfig
from lmgate.errors import UpstreamBadResponse
from lmgate.providers import http
from lmgate.providers.base import Call, Provider, embed_in_batches
from lmgate.providers.http import HttpPool, UpstreamFailure
from lmgate.types import EmbeddingRequest, EmbeddingResponse, Usage
from lmgate.wire import cohere as codec


class CohereProvider(Provider):
    type = "cohere"
    default_base_url = "https://api.cohere.com"

    def __init__(self, name: str, config: ProviderConfig, http_pool: HttpPool) -> None:
        super().__init__(name, config, http_pool)
        self._url = (config.base_url or self.default_base_url).rstrip("/") + "/v2/embed"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", **config.headers}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"

    async def embed(self, req: EmbeddingRequest, call: Call) -> EmbeddingResponse:
        vectors, usage = await embed_in_batches(self.name, req.inputs, codec.MAX_TEXTS, lambda texts: self._call(req, call, texts))
        return EmbeddingResponse(model=call.model, vectors=vectors, usage=usage)

    async def _call(self, req: EmbeddingRequest, call: Call, texts: list[str]) -> tuple[list[list[float]], Usage]:
        body = orjson.dumps(codec.render_embed_request(req, call.model, texts))
        resp = await self.post(self._url, body, self._headers, call, parse_error)
        vectors, usage = codec.parse_embed_response(await http.read_json(resp, self.name))
        if len(vectors) != len(texts):
            raise UpstreamBadResponse(f"provider {self.name} returned {len(vectors)} embeddings for {len(texts)} texts")
        return vectors, usage


def parse_error(status: int, body: bytes, headers: Any) -> UpstreamFailure:
    """Cohere's `{"id", "message"}`; 498 is its invalid-token status."""
    message = ""
    try:
        parsed = orjson.loads(body) if body else {}
        if isinstance(parsed, dict):
            message = str(parsed.get("message") or "")
    except orjson.JSONDecodeError:
        message = body[:200].decode("utf-8", "replace")
    code = None
    if status == 498:
        status = 401
    elif status == 400 and message.lower().startswith("too many tokens"):
        code = "context_length_exceeded"
    return UpstreamFailure(status, message, code)
