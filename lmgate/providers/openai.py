"""OpenAI and any OpenAI-compatible server (vLLM, the service of 000): Bearer auth, `/chat/completions`.

The Azure provider reuses this class and changes only paths and auth.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import replace
from typing import Any, AsyncIterator

import aiohttp
import orjson

from lmgate.errors import UpstreamBadResponse, UpstreamError
from lmgate.providers import http
from lmgate.providers.base import Call, Provider
from lmgate.providers.http import UpstreamFailure
from lmgate.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ImageRequest,
    ImageResponse,
    RawChunk,
    StreamEvent,
    StreamStart,
    StreamUsage,
    TranscriptionRequest,
    TranscriptionResponse,
)
from lmgate.wire import openai as codec

_USAGE_MARK = b'"usage":{'
_USAGE_MARK_SPACED = b'"usage": {'
_CUE_END = re.compile(r"-->\s*(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})")


class OpenAIProvider(Provider):
    type = "openai"
    default_base_url = "https://api.openai.com/v1"
    media_urls = frozenset({"image"})  # image_url takes http(s); files need bytes
    stream_usage = True  # ask for the usage chunk of a stream (older Azure api-versions refuse stream_options)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._form_headers = {**self.auth_headers(), **self.config.headers}  # multipart: aiohttp sets the Content-Type
        self._json_headers = {"Content-Type": "application/json", **self._form_headers}

    # -- what differs between OpenAI and Azure --------------------------------------------

    def url(self, call: Call, endpoint: str) -> str:
        return f"{(self.config.base_url or self.default_base_url).rstrip('/')}/{endpoint}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    def body_model(self, call: Call) -> str | None:
        """The `model` field sent upstream (Azure names the deployment in the path instead)."""
        return call.model

    # -- chat -------------------------------------------------------------------------------

    def chat_body(self, req: ChatRequest, call: Call) -> bytes:
        """Same-format fast path: forward the client's body with the fewest edits; else render."""
        model = self.body_model(call)
        if req.raw is not None and req.raw_format == codec.FORMAT and not (call.merge_roles and codec.needs_merge(req.messages)):
            raw = req.raw
            opts = raw.get("stream_options")
            if self.stream_usage:
                stream_ok = not req.stream or (opts or {}).get("include_usage") is True
            else:
                stream_ok = not req.stream or opts is None
            if req.raw_bytes is not None and raw.get("model") == model and stream_ok:
                return req.raw_bytes
            body = dict(raw)
            if model is None:
                body.pop("model", None)
            else:
                body["model"] = model
            if req.stream and self.stream_usage:
                body["stream_options"] = {**(opts or {}), "include_usage": True}
            elif req.stream:
                body.pop("stream_options", None)
            return orjson.dumps(body)
        if call.merge_roles:
            req = _with_messages(req, codec.merge_consecutive_roles(req.messages))
        body = codec.render_chat_request(req, model or "", stream_usage=self.stream_usage, limit_field=codec.output_limit_field(call.model))
        if model is None:
            body.pop("model", None)
        return orjson.dumps(body)

    def headers(self) -> dict[str, str]:
        """The JSON request headers, built once per provider (aiohttp copies them per request)."""
        return self._json_headers

    async def _post(self, call: Call, endpoint: str, data: Any, *, stream: bool = False, headers: dict[str, str] | None = None) -> http.Response:
        return await self.post(self.url(call, endpoint), data, headers or self.headers(), call, parse_error, stream=stream)

    async def chat(self, req: ChatRequest, call: Call) -> ChatResponse:
        resp = await self._post(call, "chat/completions", self.chat_body(req, call))
        body = await http.read_json(resp, self.name)
        if not isinstance(body, dict) or "choices" not in body:
            raise UpstreamBadResponse(f"provider {self.name} answered without choices")
        return codec.parse_chat_response(body)

    async def stream(self, req: ChatRequest, call: Call) -> AsyncIterator[StreamEvent]:
        """Forward the upstream's SSE frames in the blocks they arrive in (one RawChunk per read,
        not per event: the per-event cost is what makes Python proxies slow). Only the first
        frame (for the stream's id), usage frames and error frames are parsed."""
        resp = await self._post(call, "chat/completions", self.chat_body(req, call), stream=True)
        started = False
        done = False
        buf = b""
        async for data in http.iter_body(resp, self.name):
            buf = buf + data if buf else data
            if b"\r" in buf:
                if buf.endswith(b"\r"):
                    continue  # a \r\n split across reads: wait for the rest
                buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            block, buf = buf[:cut], buf[cut + 2 :]
            while block and not done:
                if started:
                    # A run of frames before the first one that needs a look goes out as one piece.
                    head = self._tail_start(block) if self.needs_come_last else self._look_start(block)
                    if head < 0:
                        yield RawChunk(codec.FORMAT, block + b"\n\n")
                        break
                    if head > 0:
                        yield RawChunk(codec.FORMAT, block[:head])
                        block = block[head:]
                frame, _, block = block.partition(b"\n\n")
                for ev in self._frame_events(frame, started):
                    if ev is None:
                        done = True
                        break
                    if isinstance(ev, StreamStart):
                        started = True
                    yield ev
            if done:
                break
        if not done:
            raise UpstreamError(f"provider {self.name} ended the stream early")

    def _frame_events(self, frame: bytes, started: bool) -> list[StreamEvent | None]:
        """One frame that needs a look: the stream's start, usage, an error, the end (None)."""
        payload = sse_payload(frame)
        if payload is None or self.skip_frame(payload):
            return []
        if payload == b"[DONE]":
            return [None]
        if started and _USAGE_MARK not in payload and _USAGE_MARK_SPACED not in payload and b'"error"' not in payload:
            return [RawChunk(codec.FORMAT, frame + b"\n\n")]  # a mark inside the text, nothing more
        chunk = http.json_object(payload, self.name, "stream chunk")
        if "error" in chunk and "choices" not in chunk:
            err = chunk.get("error") or {}
            message = err.get("message", "") if isinstance(err, dict) else err
            raise UpstreamError(f"provider {self.name} failed mid-stream: {self.redact(str(message))}")
        out: list[StreamEvent | None] = []
        if not started:
            out.append(StreamStart(str(chunk.get("id") or ""), str(chunk.get("model") or ""), int(chunk.get("created") or time.time())))
        usage = chunk.get("usage")
        if usage:
            # The usage frame is rendered by the surface (with the cost); forward the rest.
            if chunk.get("choices"):
                rest = {k: v for k, v in chunk.items() if k != "usage"}
                out.append(RawChunk(codec.FORMAT, b"data: " + orjson.dumps(rest) + b"\n\n", codec.chunk_events(rest)))
            out.append(StreamUsage(codec.parse_usage(usage)))
        else:
            out.append(RawChunk(codec.FORMAT, frame + b"\n\n"))  # events decoded only if something asks
        return out

    def skip_frame(self, payload: bytes) -> bool:
        """Frames a subclass drops (Azure's filter annotations)."""
        return False

    # Whether the frames that need a look (usage, an error, the end) come only last. OpenAI's
    # protocol puts usage in one chunk just before `[DONE]`, and an error ends the stream; servers
    # that repeat usage in every chunk (vLLM's continuous usage) repeat the running total, so the
    # last one seen is the whole. Then only the last frames of each read are looked at, whatever
    # the read's size, and the rest is forwarded untouched. Azure drops annotation frames that
    # may come anywhere, so it looks for marks in every frame.
    needs_come_last = True

    def _tail_start(self, block: bytes) -> int:
        """Where the block's last frame starts (the one before it, when the last is `[DONE]`);
        0 when the block is that one frame."""
        cut = block.rfind(b"\n\n")
        if cut >= 0 and block.endswith(b"[DONE]"):
            cut = block.rfind(b"\n\n", 0, cut)
        return cut + 2 if cut >= 0 else 0

    # Byte strings whose presence means a frame needs a look (usage, the end, an error, and what
    # skip_frame looks for), when such frames may come anywhere. Each costs a scan of every
    # block, so usage is found by `_tokens"`, a key every usage object has (compact or spaced
    # JSON alike; inside text the quote would be escaped); _frame_events then checks exactly.
    look_marks: tuple[bytes, ...] = (b'_tokens"', b"[DONE]", b'"error"')

    def _look_start(self, block: bytes) -> int:
        """Where the frame holding the first mark starts, or -1 without any mark. Once one mark is
        found, the others are looked for only before it (one that starts earlier ends within the
        longest mark's length of it)."""
        first = -1
        end = len(block)
        longest = self._longest_mark
        for mark in self.look_marks:
            i = block.find(mark, 0, end)
            if i >= 0 and (first < 0 or i < first):
                first = i
                end = i + longest - 1
        if first < 0:
            return -1
        cut = block.rfind(b"\n\n", 0, first)
        return cut + 2 if cut >= 0 else 0

    @functools.cached_property
    def _longest_mark(self) -> int:
        return max(len(m) for m in self.look_marks)

    # -- embeddings, images, audio ---------------------------------------------------------

    async def embed(self, req: EmbeddingRequest, call: Call) -> EmbeddingResponse:
        model = self.body_model(call)
        if req.raw is not None and req.raw_format == codec.FORMAT and "encodingFormat" not in req.raw and "input_type" not in req.raw:
            body = dict(req.raw)
            if model is None:
                body.pop("model", None)
            else:
                body["model"] = model
        else:
            body = codec.render_embedding_request(req, model or "")
            if model is None:
                body.pop("model", None)
        resp = await self._post(call, "embeddings", orjson.dumps(body))
        return codec.parse_embedding_response(await http.read_json(resp, self.name))

    async def images(self, req: ImageRequest, call: Call) -> ImageResponse:
        body: dict[str, Any] = {**req.extra, "prompt": req.prompt, "n": req.n}
        model = self.body_model(call)
        if model is not None:
            body["model"] = model
        for key in ("size", "quality", "style", "response_format", "user"):
            value = getattr(req, key)
            if value is not None:
                body[key] = value
        resp = await self._post(call, "images/generations", orjson.dumps(body))
        answer = await http.read_json(resp, self.name)
        return ImageResponse(created=int(answer.get("created") or time.time()), images=list(answer.get("data") or []))

    async def transcribe(self, req: TranscriptionRequest, call: Call) -> TranscriptionResponse:
        form = aiohttp.FormData()
        form.add_field("file", req.file, filename=req.filename, content_type=req.content_type or "application/octet-stream")
        model = self.body_model(call)
        if model is not None:
            form.add_field("model", model)
        form.add_field("response_format", req.response_format)
        for key in ("language", "prompt", "temperature"):
            value = getattr(req, key)
            if value is not None:
                form.add_field(key, str(value))
        for key, value in req.extra.items():
            form.add_field(key, str(value))
        resp = await self._post(call, "audio/transcriptions", form, headers=self._form_headers)
        ctype = resp.headers.get("Content-Type", "application/json").split(";")[0]
        try:
            body = await resp.read()
        finally:
            resp.release()
        text, duration = body.decode("utf-8", "replace"), None
        if ctype == "application/json":
            parsed = orjson.loads(body)
            text, duration = parsed.get("text", ""), parsed.get("duration")
            if duration is None and isinstance(parsed.get("usage"), dict):  # json: usage {type: duration, seconds}
                duration = parsed["usage"].get("seconds")
        elif req.response_format in ("srt", "vtt"):
            duration = _subtitle_end(text)
        return TranscriptionResponse(text=text, body=body, content_type=ctype, duration_s=duration)


def parse_error(status: int, body: bytes, headers: Any) -> UpstreamFailure:
    """OpenAI's `{"error": {"message", "type", "code"}}` (vLLM sends the same or a bare message)."""
    message, code = "", None
    try:
        parsed = orjson.loads(body) if body else {}
        err = parsed.get("error", parsed) if isinstance(parsed, dict) else {}
        if isinstance(err, str):
            message = err
        elif isinstance(err, dict):
            message = str(err.get("message") or parsed.get("message") or "")
            code = err.get("code") or err.get("type")
            inner = err.get("innererror") or {}
            if isinstance(inner, dict) and inner.get("code") == "ResponsibleAIPolicyViolation":
                code = "content_filter"
    except (orjson.JSONDecodeError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    if code not in ("context_length_exceeded", "content_filter"):
        lowered = message.lower()
        if "maximum context length" in lowered or "context length" in lowered and "exceed" in lowered:
            code = "context_length_exceeded"
        elif code is not None and "content_filter" in str(code):
            code = "content_filter"
    return UpstreamFailure(status, message, code if isinstance(code, str) else None)


def sse_payload(frame: bytes) -> bytes | None:
    """The data of one SSE frame (None for comments and empty frames)."""
    if frame.startswith(b"data: "):
        return frame[6:] if b"\n" not in frame else b"\n".join(
            line[6:] if line.startswith(b"data: ") else line[5:] for line in frame.split(b"\n") if line.startswith(b"data:")
        )
    if b"data:" not in frame:
        return None
    lines = [line[5:].lstrip(b" ") if line.startswith(b"data:") else None for line in frame.split(b"\n")]
    data = [x for x in lines if x is not None]
    return b"\n".join(data) if data else None


def _with_messages(req: ChatRequest, messages: list) -> ChatRequest:
    return replace(req, messages=messages, raw=None, raw_bytes=None)


def _subtitle_end(text: str) -> float | None:
    """The end time of the last cue of an SRT or WebVTT transcript, in seconds (for per-minute prices)."""
    stamps = _CUE_END.findall(text)
    if not stamps:
        return None
    h, m, sec, ms = stamps[-1]
    return int(h or 0) * 3600 + int(m) * 60 + int(sec) + int(ms.ljust(3, "0")) / 1000
