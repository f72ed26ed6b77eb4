"""Gemini on Vertex AI: `https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/
{location}/publishers/google/models/{model}:generateContent`, with a service account's OAuth token.

Same codec as AI Studio; text embeddings go through `:predict` (Vertex's instances/predictions
shape), at most 250 texts a call (gemini-embedding-001: one).
"""

from __future__ import annotations

from urllib.parse import quote

import orjson

from lmgate.config import ProviderConfig
from lmgate.errors import ConfigError
from lmgate.providers import http
from lmgate.providers.base import Call
from lmgate.providers.gcp_auth import ServiceAccountTokens, load_service_account
from lmgate.providers.gemini import GeminiProvider
from lmgate.providers.http import HttpPool
from lmgate.types import EmbeddingRequest, Usage
from lmgate.wire import gemini_embed as embed_codec

_PREDICT_BATCH = 250


class VertexProvider(GeminiProvider):
    type = "vertex"
    api_version = "v1"
    media_url_hosts = frozenset({"storage.googleapis.com", "www.youtube.com", "youtube.com", "m.youtube.com", "youtu.be"})

    def __init__(self, name: str, config: ProviderConfig, http_pool: HttpPool) -> None:
        info = load_service_account(config.credentials_json, config.credentials_file)
        self.tokens = ServiceAccountTokens(info)
        self.project = config.project or self.tokens.project_id
        if not self.project:
            raise ConfigError(f"provider {name!r} (vertex) needs 'project' (or a project_id in its service-account key)")
        self.location = config.location or config.region or "us-central1"
        if not config.base_url:
            host = "aiplatform.googleapis.com" if self.location == "global" else f"{self.location}-aiplatform.googleapis.com"
            config = config.model_copy(update={"base_url": f"https://{host}"})
        super().__init__(name, config, http_pool)
        self._prefix = f"{self._base}/{self.api_version}/projects/{quote(self.project, safe='')}/locations/{quote(self.location, safe='')}"

    def model_url(self, model: str) -> str:
        if model.startswith("publishers/"):
            return f"{self._prefix}/{model}"
        return f"{self._prefix}/publishers/google/models/{quote(model, safe='-._~@')}"

    async def headers(self) -> dict[str, str]:
        return {**self._headers, "Authorization": "Bearer " + await self.tokens.token()}

    def auth_refused(self) -> None:
        self.tokens.invalidate()

    async def _embed_batch(self, req: EmbeddingRequest, call: Call, inputs: list[str]) -> tuple[list[list[float]], Usage]:
        body = embed_codec.render_predict_request(req, inputs)
        resp = await self._post(call, ":predict", orjson.dumps(body))
        return embed_codec.parse_predict_response(await http.read_json(resp, self.name))

    def embed_batch_size(self, model: str) -> int:
        return 1 if model.startswith("gemini-embedding") else _PREDICT_BATCH  # Vertex: one instance for gemini-embedding-001
