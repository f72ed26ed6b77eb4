"""Gemini on Google AI Studio: `{base}/v1beta/models/{model}:generateContent`, `x-goog-api-key`.

The Vertex provider reuses this class and changes only the model path, the auth and the
embeddings endpoint. Errors arrive in Google's shape `{"error": {"code", "message", "status"}}`
and are mapped here by their status name.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, AsyncIterator
from urllib.parse import quote

import orjson

from lmgate.config import ProviderConfig
from lmgate.errors import ContentFiltered, UpstreamBadResponse, UpstreamError
from lmgate.providers import http
from lmgate.providers.base import Call, Provider, embed_in_batches
from lmgate.providers.http import HttpPool, UpstreamFailure, map_failure
from lmgate.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    RawChunk,
    StreamEvent,
    StreamStart,
    StreamUsage,
    Usage,
)
from lmgate.wire import gemini as codec
from lmgate.wire import gemini_embed as embed_codec
from lmgate.wire import gemini_response as answers
from lmgate.wire.gemini_stream import StreamDecoder
from lmgate.wire.sse import decode_sse

# Google status names -> the HTTP status lmgate maps them by.
_STATUS_OF = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 403, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409, "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500, "NOT_IMPLEMENTED": 501, "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_TOKEN_LIMIT = re.compile(
    r"(input token count.*exceeds|exceeds the maximum number of tokens|maximum number of tokens allowed|"
    r"token count.*exceeds|too many tokens|context (window|length).*exceed|prompt is too long)",
    re.IGNORECASE | re.DOTALL,
)
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED", "ACCESS_TOKEN_EXPIRED"})


class GeminiProvider(Provider):
    type = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    # fileData URIs Gemini reads itself: its Files API (which needs its own key) and YouTube videos;
    # any other URL is fetched by lmgate and sent as inlineData.
    media_url_hosts = frozenset({"generativelanguage.googleapis.com", "www.youtube.com", "youtube.com", "m.youtube.com", "youtu.be"})
    api_version = "v1beta"

    def __init__(self, name: str, config: ProviderConfig, http_pool: HttpPool) -> None:
        super().__init__(name, config, http_pool)
        self._base = (config.base_url or self.default_base_url).rstrip("/")
        self._headers = {"Content-Type": "application/json", **config.headers}
        self._keyed_headers = {**self._headers, **({"x-goog-api-key": config.api_key} if config.api_key else {})}

    # -- what differs between AI Studio and Vertex ---------------------------------------

    def model_url(self, model: str) -> str:
        return f"{self._base}/{self.api_version}/models/{quote(_bare_model(model), safe='-._~@')}"

    async def headers(self) -> dict[str, str]:
        """A request's headers, auth included (AI Studio's key is fixed: built once)."""
        return self._keyed_headers

    def auth_refused(self) -> None:
        """The upstream refused our credentials (Vertex forgets its token)."""

    def embed_batch_size(self, model: str) -> int:
        return 100  # batchEmbedContents: at most 100 requests a call

    # -- HTTP ----------------------------------------------------------------------------

    async def _post(self, call: Call, action: str, body: bytes, *, stream: bool = False) -> http.Response:
        headers = await self.headers()
        try:
            return await self.post(self.model_url(call.model) + action, body, headers, call, parse_error, stream=stream)
        except UpstreamError as exc:
            if exc.code == "upstream_auth_error":
                self.auth_refused()
            raise

    def generate_body(self, req: ChatRequest) -> bytes:
        """Same-format fast path: the Gemini client's body as it came; else rendered."""
        if req.raw is not None and req.raw_format == codec.FORMAT:
            if "model" in req.raw:  # the client's model name is not necessarily the upstream's
                return orjson.dumps({k: v for k, v in req.raw.items() if k != "model"})
            return req.raw_bytes if req.raw_bytes is not None else orjson.dumps(req.raw)
        return orjson.dumps(codec.render_generate_request(req))

    # -- chat ------------------------------------------------------------------------------

    async def chat(self, req: ChatRequest, call: Call) -> ChatResponse:
        resp = await self._post(call, ":generateContent", self.generate_body(req))
        body = await http.read_json(resp, self.name)
        if not isinstance(body, dict):
            raise UpstreamBadResponse(f"provider {self.name} answered with something that is not an object")
        self._check_blocked(body)
        if not body.get("candidates"):
            raise UpstreamBadResponse(f"provider {self.name} answered without candidates")
        resp = answers.parse_generate_response(body)
        resp.id = resp.id or _answer_id()
        return resp

    async def stream(self, req: ChatRequest, call: Call) -> AsyncIterator[StreamEvent]:
        resp = await self._post(call, ":streamGenerateContent?alt=sse", self.generate_body(req), stream=True)
        decoder = StreamDecoder()
        started = False
        async for ev in decode_sse(http.iter_body(resp, self.name)):
            if not ev.data or ev.data == b"[DONE]":
                continue
            chunk = _loads(ev.data, self.name)
            if "error" in chunk and "candidates" not in chunk:
                raise self._stream_error(chunk["error"])
            if not started:
                self._check_blocked(chunk)
                started = True
                yield StreamStart(str(chunk.get("responseId") or _answer_id()), str(chunk.get("modelVersion") or call.model), int(time.time()))
            events = decoder.events(chunk)
            data = orjson.dumps(chunk) if b"functionCall" in ev.data or b"function_call" in ev.data else ev.data
            yield RawChunk(codec.FORMAT, data, events)
        if not started:
            raise UpstreamError(f"provider {self.name} sent an empty stream")
        if not decoder.finished:
            raise UpstreamError(f"provider {self.name} ended the stream before it finished")
        yield StreamUsage(decoder.usage or Usage())

    def _check_blocked(self, body: dict[str, Any]) -> None:
        reason = answers.blocked_reason(body)
        if reason:
            raise ContentFiltered(f"the upstream's safety filter blocked the prompt ({reason})")

    def _stream_error(self, err: Any) -> Exception:
        status = int(err.get("code") or 500) if isinstance(err, dict) else 500
        failure = parse_error(status, orjson.dumps({"error": err}), None)
        return map_failure(failure, self.name, self.redact)

    # -- embeddings ------------------------------------------------------------------------

    async def embed(self, req: EmbeddingRequest, call: Call) -> EmbeddingResponse:
        size = self.embed_batch_size(call.model)
        vectors, usage = await embed_in_batches(self.name, req.inputs, size, lambda inputs: self._embed_batch(req, call, inputs))
        return EmbeddingResponse(model=call.model, vectors=vectors, usage=usage)

    async def _embed_batch(self, req: EmbeddingRequest, call: Call, inputs: list[str]) -> tuple[list[list[float]], Usage]:
        body = embed_codec.render_batch_request(req, _bare_model(call.model), inputs)
        resp = await self._post(call, ":batchEmbedContents", orjson.dumps(body))
        return embed_codec.parse_batch_response(await http.read_json(resp, self.name)), Usage()


def parse_error(status: int, body: bytes, headers: Any) -> UpstreamFailure:
    """Google's `{"error": {"code", "message", "status", "details"}}` (a list of them in streamed arrays)."""
    message, name, reason, retry = "", None, None, None
    try:
        parsed = orjson.loads(body) if body else {}
        if isinstance(parsed, list) and parsed:
            parsed = parsed[0]
        err = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            name = err.get("status")
            for d in err.get("details") or []:
                if not isinstance(d, dict):
                    continue
                reason = d.get("reason") or reason
                delay = d.get("retryDelay")
                if isinstance(delay, str) and delay.endswith("s"):
                    try:
                        retry = float(delay[:-1])
                    except ValueError:
                        pass
        elif isinstance(parsed, dict):
            message = str(parsed.get("message") or "")
    except orjson.JSONDecodeError:
        message = body[:200].decode("utf-8", "replace")
    mapped = _STATUS_OF.get(str(name), status) if name else status
    code = None
    if reason in _AUTH_REASONS:
        mapped = 401
    elif mapped == 400 and _TOKEN_LIMIT.search(message):
        code = "context_length_exceeded"
    return UpstreamFailure(mapped, message, code, retry)


def _bare_model(model: str) -> str:
    """A model name without the `models/` prefix Gemini's own names carry."""
    return model.removeprefix("models/")


def _answer_id() -> str:
    """An id for an answer whose upstream gave none (older Gemini versions send no responseId)."""
    return "gen-" + os.urandom(12).hex()


def _loads(data: bytes, provider: str) -> dict[str, Any]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"provider {provider} sent a stream chunk that is not JSON") from None
    if isinstance(chunk, list) and chunk and isinstance(chunk[0], dict):
        chunk = chunk[0]
    if not isinstance(chunk, dict):
        raise UpstreamBadResponse(f"provider {provider} sent a stream chunk that is not an object")
    return chunk
