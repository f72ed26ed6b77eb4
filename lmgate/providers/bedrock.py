"""AWS Bedrock runtime: Converse / ConverseStream for every chat model (Llama, Nova, Claude), and
InvokeModel / InvokeModelWithResponseStream for Anthropic-shaped requests to Claude (a same-format
fast path). Requests are SigV4-signed by `sigv4` (or sent with a Bedrock API key as a bearer
token); streams arrive in the AWS event-stream framing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, AsyncIterator

import orjson
import yarl

from lmgate.errors import ConfigError, UpstreamBadResponse, UpstreamError
from lmgate.providers import http
from lmgate.providers.base import Call, Provider
from lmgate.providers.http import UpstreamFailure
from lmgate.providers.sigv4 import Credentials, path_segment, sign
from lmgate.types import ChatRequest, ChatResponse, StreamEvent
from lmgate.wire import anthropic as anthropic_codec
from lmgate.wire import bedrock as codec
from lmgate.wire.anthropic_stream import StreamDecoder as AnthropicDecoder
from lmgate.wire.anthropic_stream import stream_error as anthropic_stream_error
from lmgate.wire.bedrock_stream import StreamDecoder, exception_error
from lmgate.wire.eventstream import EventStreamError, Message, decode_stream

# Bedrock exception names -> the HTTP status lmgate maps them from (map_failure does the rest).
_STATUS_OF = {
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 429,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
    "ExpiredTokenException": 403,
    "ModelNotReadyException": 503,
    "ServiceUnavailableException": 503,
    "ModelTimeoutException": 408,
    "ModelErrorException": 502,
    "ModelStreamErrorException": 502,
    "InternalServerException": 500,
    "ResourceNotFoundException": 404,
}
_CONTEXT_MARKERS = ("too long", "too many input tokens", "context window", "context length", "maximum context")


class BedrockProvider(Provider):
    type = "bedrock"
    media_urls: frozenset[str] = frozenset()  # Bedrock takes bytes only (or S3): lmgate fetches URLs

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        self.region = c.region or "us-east-1"
        self.base = (c.base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com").rstrip("/")
        self.credentials: Credentials | None = None
        if not c.api_key:
            if not (c.access_key_id and c.secret_access_key):
                raise ConfigError(f"provider {self.name!r} (type bedrock) needs access_key_id and secret_access_key, or api_key")
            self.credentials = Credentials(c.access_key_id, c.secret_access_key, c.session_token)

    # -- the wire -------------------------------------------------------------------------------

    def url(self, model: str, operation: str) -> str:
        """`{base}/model/{modelId}/{operation}`, the model id encoded as AWS SDKs encode it (`:` -> `%3A`)."""
        return f"{self.base}/model/{path_segment(model)}/{operation}"

    def headers(self, url: str, body: bytes, stream: bool) -> dict[str, str]:
        h = {"Content-Type": "application/json", **self.config.headers}
        if not stream:
            h["Accept"] = "application/json"
        if self.credentials is None:
            h["Authorization"] = f"Bearer {self.config.api_key}"
            return h
        return sign("POST", url, h, body, self.credentials, self.region, "bedrock")

    async def _post(self, call: Call, operation: str, body: bytes, stream: bool) -> http.Response:
        url = self.url(call.model, operation)
        # The URL goes out exactly as signed.
        return await self.post(yarl.URL(url, encoded=True), body, self.headers(url, body, stream), call, parse_error, stream=stream)

    def _invoke_body(self, req: ChatRequest, call: Call) -> bytes | None:
        """Anthropic-shaped requests to a Claude model go to InvokeModel almost as they came."""
        if req.raw is None or req.raw_format != anthropic_codec.FORMAT or "anthropic." not in call.model.lower():
            return None
        raw = req.raw
        if req.raw_bytes is not None and raw.get("anthropic_version") == anthropic_codec.BEDROCK_VERSION and "model" not in raw and "stream" not in raw:
            return req.raw_bytes
        body = {k: v for k, v in raw.items() if k not in ("model", "stream")}
        body["anthropic_version"] = anthropic_codec.BEDROCK_VERSION
        return orjson.dumps(body)

    def _converse_body(self, req: ChatRequest) -> bytes:
        if req.raw is not None and req.raw_format == codec.FORMAT and req.raw_bytes is not None:
            return req.raw_bytes
        return orjson.dumps(codec.render_request(req))

    # -- chat -----------------------------------------------------------------------------------

    async def chat(self, req: ChatRequest, call: Call) -> ChatResponse:
        invoke = self._invoke_body(req, call)
        if invoke is not None:
            resp = await self._post(call, "invoke", invoke, stream=False)
            body = await http.read_json(resp, self.name)
            if not isinstance(body, dict) or body.get("type") != "message":
                raise UpstreamBadResponse(f"provider {self.name} answered without a message")
            return anthropic_codec.parse_response(body)
        resp = await self._post(call, "converse", self._converse_body(req), stream=False)
        request_id = resp.headers.get("x-amzn-RequestId", "")
        body = await http.read_json(resp, self.name)
        if not isinstance(body, dict) or "output" not in body:
            raise UpstreamBadResponse(f"provider {self.name} answered without output")
        answer = codec.parse_response(body, request_id)
        answer.model = call.model
        return answer

    async def stream(self, req: ChatRequest, call: Call) -> AsyncIterator[StreamEvent]:
        invoke = self._invoke_body(req, call)
        operation = "invoke-with-response-stream" if invoke is not None else "converse-stream"
        resp = await self._post(call, operation, invoke if invoke is not None else self._converse_body(req), stream=True)
        request_id = resp.headers.get("x-amzn-RequestId", "")
        messages = decode_stream(http.iter_body(resp, self.name))
        try:
            if invoke is not None:
                async for ev in self._invoke_events(messages):
                    yield ev
            else:
                decoder = StreamDecoder(request_id, call.model)
                async for msg in messages:
                    self._check(msg)
                    for ev in decoder.feed(msg.event_type, _json(msg.payload, self.name)):
                        yield ev
                if decoder.usage is None:
                    raise UpstreamError(f"provider {self.name} ended the stream early")
        except EventStreamError as exc:
            raise UpstreamBadResponse(f"provider {self.name} sent a broken event stream ({exc})") from None
        finally:
            await messages.aclose()

    async def _invoke_events(self, messages: AsyncIterator[Message]) -> AsyncIterator[StreamEvent]:
        decoder = AnthropicDecoder()
        async for msg in messages:
            self._check(msg)
            if msg.event_type != "chunk":
                continue
            part = _json(msg.payload, self.name)
            try:
                ev = orjson.loads(base64.b64decode(part.get("bytes") or ""))
            except (binascii.Error, ValueError, orjson.JSONDecodeError):
                raise UpstreamBadResponse(f"provider {self.name} sent a chunk that is not base64 JSON") from None
            if not isinstance(ev, dict):
                continue
            if ev.get("type") == "error":
                raise anthropic_stream_error(ev, self.name, self.redact)
            for out in decoder.feed(ev):
                yield out
        if not decoder.stopped:
            raise UpstreamError(f"provider {self.name} ended the stream early")

    def _check(self, msg: Message) -> None:
        """An exception (or error) message in the stream becomes lmgate's own error."""
        kind = msg.message_type
        if kind == "event":
            return
        name = str(msg.headers.get(":exception-type") or msg.headers.get(":error-code") or "InternalServerException")
        text = str(msg.headers.get(":error-message") or "")
        if not text and msg.payload:
            try:
                text = str(orjson.loads(msg.payload).get("message") or "")
            except (orjson.JSONDecodeError, AttributeError):
                text = ""
        raise exception_error(name, self.redact(text), self.name)


def _json(payload: bytes, provider: str) -> dict[str, Any]:
    """An event's JSON payload (an empty payload is an empty object)."""
    return http.json_object(payload, provider, "stream event") if payload else {}


def error_name(headers: Any, parsed: Any) -> str:
    """The exception name from `x-amzn-ErrorType` (`Name:http://...`) or the body's `__type` (`ns#Name`)."""
    value = headers.get("x-amzn-ErrorType") if headers is not None else None
    if not value and isinstance(parsed, dict):
        value = parsed.get("__type") or parsed.get("code")
    name = str(value or "")
    return name.split(":", 1)[0].rsplit("#", 1)[-1]


def parse_error(status: int, body: bytes, headers: Any) -> UpstreamFailure:
    """Bedrock's `{"message"}` with the exception named in `x-amzn-ErrorType` or `__type`."""
    parsed: Any = None
    try:
        parsed = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        parsed = None
    message = ""
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or parsed.get("Message") or "")
    elif body:
        message = body[:200].decode("utf-8", "replace")
    name = error_name(headers, parsed)
    code = None
    if name == "ValidationException" and any(m in message.lower() for m in _CONTEXT_MARKERS):
        code = "context_length_exceeded"
    return UpstreamFailure(_STATUS_OF.get(name, status), message, code)
