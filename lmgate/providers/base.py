"""The one small interface every provider implements.

A provider knows its base URL, its auth and which codec it speaks; nothing about keys, limits,
caching or routing. Each endpoint method takes one typed request and one `Call`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, ClassVar

import aiohttp
import yarl

from lmgate.config import ProviderConfig
from lmgate.errors import BadRequest, ConfigError, GatewayError, UpstreamBadResponse
from lmgate.providers import http
from lmgate.providers.http import HttpPool, UpstreamFailure
from lmgate.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ImageRequest,
    ImageResponse,
    StreamEvent,
    TranscriptionRequest,
    TranscriptionResponse,
    Usage,
)


@dataclass(frozen=True, slots=True)
class Call:
    """How to make one upstream call: the upstream model and the limits that apply to it."""

    model: str  # the upstream's model (or Azure deployment) name
    timeout: float  # seconds for the whole call (for streams: until the first byte)
    connect_timeout: float
    idle_timeout: float  # streams: longest silence between two chunks
    merge_roles: bool = False
    request_id: str = ""
    max_output_tokens: int | None = None  # the model's answer limit (catalog), for protocols that require one


class Provider:
    """Base class: subclasses set `type` and implement the endpoints they support."""

    type: ClassVar[str] = ""
    # Media kinds the upstream takes as http(s) URLs; URLs of other kinds are fetched by lmgate
    # (providers/media.py) and arrive as bytes.
    media_urls: ClassVar[frozenset[str]] = frozenset()
    media_url_hosts: ClassVar[frozenset[str]] = frozenset()  # hosts whose URLs it takes for any kind

    def __init__(self, name: str, config: ProviderConfig, http: HttpPool) -> None:
        self.name = name
        self.config = config
        self.http = http
        self._secrets = [s for s in self.secret_values() if s and len(s) >= 6]

    # -- endpoints ----------------------------------------------------------------------

    async def chat(self, req: ChatRequest, call: Call) -> ChatResponse:
        raise self.unsupported("chat completions")

    def stream(self, req: ChatRequest, call: Call) -> AsyncIterator[StreamEvent]:
        raise self.unsupported("streamed chat completions")

    async def embed(self, req: EmbeddingRequest, call: Call) -> EmbeddingResponse:
        raise self.unsupported("embeddings")

    async def images(self, req: ImageRequest, call: Call) -> ImageResponse:
        raise self.unsupported("image generation")

    async def transcribe(self, req: TranscriptionRequest, call: Call) -> TranscriptionResponse:
        raise self.unsupported("audio transcription")

    async def close(self) -> None:
        """Release anything beyond the shared HTTP pool (token refreshers, ...)."""

    # -- helpers for subclasses ---------------------------------------------------------

    def secret_values(self) -> list[str]:
        """Credentials that must never appear in a response or a log."""
        c = self.config
        return [v for v in (c.api_key, c.secret_access_key, c.session_token, c.credentials_json) if v]

    def redact(self, text: str) -> str:
        """An upstream's error text, with our credentials and anything key-like removed."""
        for s in self._secrets:
            text = text.replace(s, "[redacted]")
        text = _KEYLIKE.sub("[redacted]", text)
        return text[:500]

    def unsupported(self, what: str) -> GatewayError:
        return BadRequest(f"provider type '{self.type}' does not support {what}", code="unsupported_endpoint")

    def post(
        self,
        url: str | yarl.URL,
        data: bytes | aiohttp.FormData,
        headers: dict[str, str],
        call: Call,
        parse_error: Callable[[int, bytes, Any], UpstreamFailure],
        *,
        stream: bool = False,
    ) -> Awaitable[http.Response]:
        """One POST through this provider's pooled client, with the call's timeouts (streams: the idle
        timeout between chunks) and its errors mapped by `parse_error`. A plain function returning
        http.send's awaitable, so a caller's own wrapper costs no extra coroutine."""
        return http.send(
            self.http.session(self.name, self.config.max_connections),
            "POST",
            url,
            data=data,
            headers=headers,
            timeout=http.timeout_for(call.timeout, call.connect_timeout, call.idle_timeout if stream else None),
            parse_error=parse_error,
            redact=self.redact,
            provider=self.name,
        )

    def require(self, field: str) -> Any:
        value = getattr(self.config, field)
        if not value:
            raise ConfigError(f"provider {self.name!r} (type {self.type}) needs '{field}'")
        return value


async def embed_in_batches(
    provider: str,
    inputs: list[str],
    size: int,
    call_batch: Callable[[list[str]], Awaitable[tuple[list[list[float]], Usage]]],
) -> tuple[list[list[float]], Usage]:
    """Embed `inputs` in upstream calls of at most `size`, made concurrently and rejoined in order."""
    batches = [inputs[i : i + size] for i in range(0, len(inputs), size)] or [[]]
    results = await asyncio.gather(*(call_batch(b) for b in batches))
    vectors: list[list[float]] = []
    usage = Usage()
    for v, u in results:
        vectors.extend(v)
        usage.add(u)
    if len(vectors) != len(inputs):
        raise UpstreamBadResponse(f"provider {provider} returned {len(vectors)} embeddings for {len(inputs)} inputs")
    return vectors, usage


# Long secret-looking tokens: sk-..., AKIA..., bearer tokens, JWTs.
_KEYLIKE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|AKIA[A-Z0-9]{12,}|ya29\.[A-Za-z0-9_\-]+|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-.]+|"
    r"(?i:bearer)\s+[A-Za-z0-9._\-]{12,}|(?i:key[=:]\s*)[A-Za-z0-9._\-]{12,})"
)
