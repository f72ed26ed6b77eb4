"""Anthropic's Messages API: `POST {base_url}/v1/messages` with `x-api-key` and `anthropic-version`.

An Anthropic-shaped request is forwarded with the fewest edits (model name, and Bedrock's
`anthropic_version` dropped); any other is rendered by the Anthropic codec.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncIterator

import orjson

from lmgate.errors import UpstreamBadResponse, UpstreamError
from lmgate.providers import http
from lmgate.providers.base import Call, Provider
from lmgate.providers.http import UpstreamFailure
from lmgate.types import ChatRequest, ChatResponse, StreamEvent
from lmgate.wire import anthropic as codec
from lmgate.wire.anthropic_stream import StreamDecoder, stream_error
from lmgate.wire.sse import decode_sse

DEFAULT_VERSION = "2023-06-01"
_CONTEXT_MARKERS = ("prompt is too long", "input is too long", "context window", "context length", "too many tokens")


class AnthropicProvider(Provider):
    type = "anthropic"
    default_base_url = "https://api.anthropic.com"
    media_urls = frozenset({"image", "document"})  # URL image and PDF sources are fetched by Anthropic

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base = (self.config.base_url or self.default_base_url).rstrip("/")
        self._url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        self._headers = {
            "Content-Type": "application/json",
            "anthropic-version": self.config.api_version or DEFAULT_VERSION,
            **({"x-api-key": self.config.api_key} if self.config.api_key else {}),
            **self.config.headers,
        }

    def body(self, req: ChatRequest, call: Call) -> bytes:
        """Same-format fast path: the client's body with the upstream model; else render."""
        if req.raw is not None and req.raw_format == codec.FORMAT:
            raw = req.raw
            if (
                req.raw_bytes is not None
                and raw.get("model") == call.model
                and "anthropic_version" not in raw
                and bool(raw.get("stream")) == req.stream
            ):
                return req.raw_bytes
            body = {k: v for k, v in raw.items() if k not in ("anthropic_version", "anthropic_beta")}
            body["model"] = call.model
            if req.stream:
                body["stream"] = True
            else:
                body.pop("stream", None)
            return orjson.dumps(body)
        return orjson.dumps(codec.render_request(req, call.model, call.max_output_tokens))

    async def _post(self, data: bytes, call: Call, stream: bool) -> http.Response:
        return await self.post(self._url, data, self._headers, call, parse_error, stream=stream)

    async def chat(self, req: ChatRequest, call: Call) -> ChatResponse:
        resp = await self._post(self.body(req, call), call, stream=False)
        body = await http.read_json(resp, self.name)
        if not isinstance(body, dict) or body.get("type") != "message":
            raise UpstreamBadResponse(f"provider {self.name} answered without a message")
        return codec.parse_response(body)

    async def stream(self, req: ChatRequest, call: Call) -> AsyncIterator[StreamEvent]:
        resp = await self._post(self.body(req, call), call, stream=True)
        decoder = StreamDecoder()
        async with aclosing(decode_sse(http.iter_body(resp, self.name))) as events:  # closed now, not by a loop task
            async for sse in events:
                if not sse.data:
                    continue
                ev = http.json_object(sse.data, self.name, "stream event")
                if ev.get("type") == "error":
                    raise stream_error(ev, self.name, self.redact)
                for out in decoder.feed(ev):
                    yield out
                if decoder.stopped:
                    return
        raise UpstreamError(f"provider {self.name} ended the stream early")


def parse_error(status: int, body: bytes, headers: Any) -> UpstreamFailure:
    """Anthropic's `{"type": "error", "error": {"type", "message"}}`; a prompt too long is the client's."""
    message, kind = "", None
    try:
        parsed = orjson.loads(body) if body else {}
        err = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(err, dict):
            message, kind = str(err.get("message") or ""), err.get("type")
    except orjson.JSONDecodeError:
        message = body[:200].decode("utf-8", "replace")
    code = None
    lowered = message.lower()
    if status in (400, 413) and any(m in lowered for m in _CONTEXT_MARKERS):
        code = "context_length_exceeded"
    if kind == "overloaded_error":
        status = 529
    elif kind == "rate_limit_error":
        status = 429
    return UpstreamFailure(status, message, code)
