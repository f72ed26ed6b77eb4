"""Canonical types: the one internal shape every surface parses into and every provider renders from.

Plain slotted dataclasses: cheap to build on the hot path, typed at every interface.
This module imports nothing from lmgate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal, Union

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


# ---------------------------------------------------------------- message parts


@dataclass(slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class MediaPart:
    """An image, document, audio or video input.

    Exactly one of `url` (http(s), fetched by lmgate or passed on where the provider takes
    URLs) and `data` (raw bytes, from a data URI or a base64 field) is set.
    """

    kind: Literal["image", "document", "audio", "video"]
    media_type: str | None = None  # e.g. image/png, application/pdf, audio/wav
    data: bytes | None = None
    url: str | None = None
    name: str | None = None  # document file name, where the protocol carries one
    detail: str | None = None  # OpenAI image detail: auto|low|high
    type: Literal["media"] = "media"


Part = Union[TextPart, MediaPart]


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(slots=True)
class Message:
    role: Role
    content: list[Part] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)  # assistant turns
    tool_call_id: str | None = None  # tool turns: the call this answers
    name: str | None = None  # tool turns: the function name, where known

    def text(self) -> str:
        """All text parts joined, for guardrails, token estimates and cache keys."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON schema


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "function"] = "auto"
    name: str | None = None  # with mode == "function"


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


# ---------------------------------------------------------------- requests


@dataclass(slots=True)
class Options:
    """Per-request options from the key suffix, headers and key defaults (004's userdata)."""

    cache: bool = True  # is_cache
    cache_set: bool = False  # the request itself (key suffix, header) chose is_cache, not a default
    guard: int = 1  # use_guard: 0 off, 1 input, 2 input and output
    app_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # tenant fields, stored with usage


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False  # the client asked for the usage chunk of a stream
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] | None = None
    n: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    # Fields of the inbound protocol that the canonical form does not model; passed on to an
    # upstream of the same protocol only.
    extra: dict[str, Any] = field(default_factory=dict)
    # Same-format fast path: the parsed inbound body and its protocol. Any policy step that
    # changes the request must set `raw` to None, so the provider renders from the fields.
    raw: dict[str, Any] | None = None
    raw_format: str | None = None
    raw_bytes: bytes | None = None  # the inbound body, forwarded as is when nothing changed

    def system_text(self) -> str:
        return "\n".join(m.text() for m in self.messages if m.role == "system")


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]
    input_type: str | None = None  # Cohere: search_document, search_query, classification, clustering
    dimensions: int | None = None
    encoding_format: str | None = None  # float | base64
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] | None = None
    raw_format: str | None = None


@dataclass(slots=True)
class ImageRequest:
    model: str
    prompt: str
    n: int = 1
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: str | None = None  # url | b64_json
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TranscriptionRequest:
    model: str
    file: bytes
    filename: str
    content_type: str | None = None
    language: str | None = None
    prompt: str | None = None
    response_format: str = "json"  # json | text | verbose_json | srt | vtt
    temperature: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- answers


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # input tokens read from a provider-side prompt cache
    cache_write_tokens: int = 0  # input tokens written to a provider-side prompt cache
    reasoning_tokens: int = 0  # part of output_tokens
    input_chars: int = 0  # for per-character prices (Gemini 1.x on Vertex)
    output_chars: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: "Usage") -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.input_chars += other.input_chars
        self.output_chars += other.output_chars


@dataclass(slots=True)
class Choice:
    index: int
    message: Message
    finish_reason: FinishReason | None = "stop"


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    created: int
    choices: list[Choice]
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0  # set by accounting
    # Same-format fast path: the upstream body, parsed, and its protocol; a surface of the same
    # protocol may render from it (adding its own fields) instead of from `choices`.
    raw: dict[str, Any] | None = None
    raw_format: str | None = None


@dataclass(slots=True)
class EmbeddingResponse:
    model: str
    vectors: list[list[float]]
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    raw: dict[str, Any] | None = None
    raw_format: str | None = None


@dataclass(slots=True)
class ImageResponse:
    created: int
    images: list[dict[str, Any]]  # each {url|b64_json, revised_prompt?}
    cost_usd: float = 0.0


@dataclass(slots=True)
class TranscriptionResponse:
    text: str
    body: bytes  # the answer in the requested response_format, as the upstream gave it
    content_type: str
    duration_s: float | None = None
    cost_usd: float = 0.0


# ---------------------------------------------------------------- streams
# A stream is an async iterator of these events. Providers emit them; one accumulator
# (lmgate.wire.accumulate) folds them into a ChatResponse, so cache, guardrails and
# accounting treat both paths the same.


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    created: int
    usage: "Usage | None" = None  # input-side usage, where the upstream tells it up front (Anthropic)


@dataclass(slots=True)
class TextDelta:
    text: str
    index: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    call_index: int  # position of the call within the turn
    id: str | None = None  # set on the first delta of a call
    name: str | None = None  # set on the first delta of a call
    arguments: str = ""  # a piece of the JSON arguments
    index: int = 0  # the choice


@dataclass(slots=True)
class StreamFinish:
    finish_reason: FinishReason
    index: int = 0


@dataclass(slots=True)
class StreamUsage:
    usage: Usage
    cost_usd: float | None = None  # set by accounting before a surface renders it


@dataclass(slots=True)
class RawChunk:
    """Same-format fast path: a piece of the upstream's stream that a surface of protocol `format`
    may forward as it is (for openai, whole SSE frames, several per upstream read). `events` are
    decoded only when something needs them (cache, output guardrails, a surface of another
    protocol); see lmgate.wire.registry."""

    format: str
    data: bytes
    events: list["StreamEvent"] | None = None


StreamEvent = Union[StreamStart, TextDelta, ToolCallDelta, StreamFinish, StreamUsage, RawChunk]
EventStream = AsyncIterator[StreamEvent]


# ---------------------------------------------------------------- keys, context, ledger


@dataclass(slots=True)
class KeyRecord:
    """A caller's key as the hot path sees it (held in memory; the raw key is never kept)."""

    id: str
    name: str
    key_hash: str  # hex sha256 of the raw key
    models: tuple[str, ...] = ("*",)  # allowlist; fnmatch patterns
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: Literal["total", "daily", "monthly"] = "total"
    cache: bool | None = None  # default is_cache for this key (None: the gateway default)
    guard: int | None = None  # default use_guard for this key
    metadata: dict[str, Any] = field(default_factory=dict)
    expires_at: float | None = None  # unix time
    revoked: bool = False
    source: Literal["config", "store"] = "config"


@dataclass(slots=True)
class Attempt:
    """One upstream try of a request, for the ledger."""

    deployment: str
    provider: str
    model: str  # the upstream model name
    status: int
    latency_ms: float
    error: str | None = None


@dataclass(slots=True)
class RequestContext:
    """What the pipeline knows about one request besides its body."""

    request_id: str
    surface: str  # openai, azure, gemini, bedrock, anthropic
    endpoint: str  # chat, embeddings, images, audio
    started: float  # time.monotonic() at arrival
    started_wall: float  # time.time() at arrival
    key: KeyRecord | None = None
    options: Options = field(default_factory=Options)
    model: str | None = None  # the name the client asked for
    served_model: str | None = None  # after fallbacks
    deployment: str | None = None
    provider: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    cache_status: Literal["hit", "miss", "off"] = "off"
    cache_saved_usd: float = 0.0
    guardrails: list[dict[str, Any]] = field(default_factory=list)  # decisions, redacted
    warnings: list[str] = field(default_factory=list)  # e.g. deprecated model
    response_headers: dict[str, str] = field(default_factory=dict)  # added by policy steps
    first_token_ms: float | None = None
    reservation: Any = None  # the budget/limit reservation to settle after the call
    lease: Any = None  # the router's hold on the deployment serving a stream, released when it ends


@dataclass(slots=True)
class UsageRecord:
    """One ledger row: every request that reached the pipeline, success or error."""

    request_id: str
    ts: float  # unix time at arrival
    key_id: str | None
    key_name: str | None
    surface: str
    endpoint: str
    model: str | None
    served_model: str | None
    deployment: str | None
    provider: str | None
    status: int
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    stream: bool = False
    cache_hit: bool = False
    cache_saved_usd: float = 0.0
    error_code: str | None = None
    app_name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # tenant fields (Bot_Id, userid, ...)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    guardrails: list[dict[str, Any]] = field(default_factory=list)
