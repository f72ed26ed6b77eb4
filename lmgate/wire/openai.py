"""The OpenAI Chat Completions and Embeddings wire format, both directions.

Used inbound by the OpenAI and Azure surfaces and outbound by the openai and azure providers.
Pure functions over parsed JSON; no I/O.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import orjson

from lmgate.errors import BadRequest, Unprocessable
from lmgate.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    MediaPart,
    Message,
    Part,
    RawChunk,
    ResponseFormat,
    StreamEvent,
    StreamFinish,
    StreamStart,
    StreamUsage,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from lmgate.wire import fields as f
from lmgate.wire.media import b64decode, b64encode, data_uri, media_from_url
from lmgate.wire.registry import decode_raw

FORMAT = "openai"
_ROLES = {"system", "user", "assistant", "tool", "developer", "function"}
_FINISH = {"stop", "length", "tool_calls", "content_filter", "function_call"}

# Request fields the canonical type models; everything else is `extra`, passed to same-format upstreams.
_KNOWN = {
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "stop", "n", "seed", "presence_penalty", "frequency_penalty", "tools", "tool_choice",
    "parallel_tool_calls", "response_format", "user", "functions", "function_call", "top_k",
}


# ---------------------------------------------------------------- chat request, inbound


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    """An OpenAI chat body as the canonical request, normalising the variants seen in the wild.

    Only the fields present are looked at (most requests carry three or four): this runs on
    every request.
    """
    model = f.require(body, "model", str)
    raw_messages = f.require(body, "messages", list)
    if not raw_messages:
        raise BadRequest("'messages' must not be empty", code="missing_field", param="messages")
    quirks: list[str] = []  # non-standard shapes normalised; such a body is never forwarded as is
    messages = [_parse_message(m, i, quirks) for i, m in enumerate(raw_messages)]
    req = ChatRequest(model=model, messages=messages, raw_format=FORMAT)
    extra: dict[str, Any] = {}
    for key, value in body.items():
        if value is None or key in ("model", "messages"):
            continue
        setter = _FIELD_PARSERS.get(key)
        if setter is not None:
            setter(req, body, value)
        elif key not in _KNOWN:
            extra[key] = value
    if req.max_tokens is None and "max_completion_tokens" in body:
        req.max_tokens = f.positive_int(body, "max_completion_tokens")
    req.extra = extra
    req.raw = None if quirks else body
    return req


def _set_stream(req: ChatRequest, body: dict[str, Any], value: Any) -> None:
    req.stream = bool(f.check(value, "stream", bool))


def _set_stream_options(req: ChatRequest, body: dict[str, Any], value: Any) -> None:
    req.include_usage = bool(f.check(value, "stream_options", dict).get("include_usage"))


def _set_stop(req: ChatRequest, body: dict[str, Any], value: Any) -> None:
    req.stop = [value] if isinstance(value, str) else f.check(value, "stop", list)


def _set_tools(req: ChatRequest, body: dict[str, Any], value: Any) -> None:
    req.tools = _parse_tools(body)


def _set_tool_choice(req: ChatRequest, body: dict[str, Any], value: Any) -> None:
    req.tool_choice = _parse_tool_choice(value)


def _set_response_format(req: ChatRequest, body: dict[str, Any], value: Any) -> None:
    req.response_format = _parse_response_format(f.check(value, "response_format", dict))


def _set(field: str, read: Any) -> Any:
    def setter(req: ChatRequest, body: dict[str, Any], value: Any) -> None:
        setattr(req, field, read(body))

    return setter


# Field name -> how it lands on the ChatRequest (with its type and range checks).
_FIELD_PARSERS: dict[str, Any] = {
    "stream": _set_stream,
    "stream_options": _set_stream_options,
    "max_tokens": _set("max_tokens", lambda b: f.positive_int(b, "max_completion_tokens") or f.positive_int(b, "max_tokens")),
    "temperature": _set("temperature", lambda b: f.number_in(b, "temperature", 0, 2)),
    "top_p": _set("top_p", lambda b: f.number_in(b, "top_p", 0, 1)),
    "top_k": _set("top_k", lambda b: f.optional(b, "top_k", int)),
    "stop": _set_stop,
    "n": _set("n", lambda b: f.positive_int(b, "n")),
    "seed": _set("seed", lambda b: f.optional(b, "seed", int)),
    "presence_penalty": _set("presence_penalty", lambda b: f.number_in(b, "presence_penalty", -2, 2)),
    "frequency_penalty": _set("frequency_penalty", lambda b: f.number_in(b, "frequency_penalty", -2, 2)),
    "tools": _set_tools,
    "functions": _set_tools,
    "tool_choice": _set_tool_choice,
    "function_call": lambda req, body, value: None if "tool_choice" in body else _set_tool_choice(req, body, value),
    "parallel_tool_calls": _set("parallel_tool_calls", lambda b: f.optional(b, "parallel_tool_calls", bool)),
    "response_format": _set_response_format,
    "user": _set("user", lambda b: f.optional(b, "user", str)),
}


_PLAIN_ROLES = frozenset({"system", "user", "assistant"})


def _parse_message(m: Any, i: int, quirks: list[str]) -> Message:
    if type(m) is dict and len(m) == 2:  # the usual {"role", "content": "text"}, without the checks below
        role, content = m.get("role"), m.get("content")
        if type(content) is str and role in _PLAIN_ROLES:
            return Message(role=role, content=[TextPart(content)])
    where = f"messages[{i}]."
    if not isinstance(m, dict):
        raise Unprocessable(f"messages[{i}] must be an object", code="invalid_type", param=f"messages[{i}]")
    role = f.require(m, "role", str, where)
    if role not in _ROLES:
        raise Unprocessable(f"messages[{i}].role '{role}' is not one of system, user, assistant, tool", param=f"{where}role")
    if role == "developer":
        role = "system"
    content = _parse_content(m.get("content"), where, quirks)
    tool_calls = []
    for j, tc in enumerate(f.optional(m, "tool_calls", list) or []):
        fn = f.require(tc, "function", dict, f"{where}tool_calls[{j}].")
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            args = orjson.dumps(args).decode()
        tool_calls.append(ToolCall(id=str(tc.get("id") or f"call_{i}_{j}"), name=f.require(fn, "name", str), arguments=args))
    if role == "function":  # the legacy function-result role
        return Message(role="tool", content=content, tool_call_id=m.get("name"), name=m.get("name"))
    if role == "assistant" and "function_call" in m and isinstance(m["function_call"], dict):
        fc = m["function_call"]
        tool_calls.append(ToolCall(id=fc.get("name", "call"), name=fc.get("name", ""), arguments=fc.get("arguments", "")))
    tool_call_id = f.optional(m, "tool_call_id", str, where)
    if role == "tool" and tool_call_id is None:
        raise BadRequest(f"{where}tool_call_id is required for a tool message", param=f"{where}tool_call_id")
    return Message(role=role, content=content, tool_calls=tool_calls, tool_call_id=tool_call_id, name=m.get("name"))


def _parse_content(content: Any, where: str, quirks: list[str]) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise Unprocessable(f"{where}content must be a string or an array of parts", param=f"{where}content")
    parts: list[Part] = []
    for k, p in enumerate(content):
        pw = f"{where}content[{k}]."
        if isinstance(p, str):
            quirks.append("bare string part")
            parts.append(TextPart(p))
            continue
        if not isinstance(p, dict):
            raise Unprocessable(f"{where}content[{k}] must be an object", param=f"{where}content[{k}]")
        kind = p.get("type")
        if kind is None:
            quirks.append("part without type")
        if kind == "text" or (kind is None and "text" in p):
            parts.append(TextPart(f.require(p, "text", str, pw)))
        elif kind == "image_url":
            img = p.get("image_url")
            if isinstance(img, str):  # some clients send the URL directly
                quirks.append("image_url as a string")
                img = {"url": img}
            img = f.check(img, "image_url", dict, pw)
            # 003 puts "detail" beside image_url instead of inside it.
            detail = img.get("detail") or p.get("detail")
            if "detail" in p:
                quirks.append("detail beside image_url")
            parts.append(media_from_url(f.require(img, "url", str, pw + "image_url."), "image", detail=detail))
        elif kind == "file":
            fl = f.require(p, "file", dict, pw)
            # 003 sends file_name; OpenAI documents filename.
            name = fl.get("filename") or fl.get("file_name")
            if "file_name" in fl:
                quirks.append("file_name")
            file_data = fl.get("file_data")
            if not isinstance(file_data, str):
                raise BadRequest(f"{pw}file.file_data is required (file ids are not supported)", param=f"{pw}file.file_data")
            if file_data.startswith("data:"):
                parts.append(media_from_url(file_data, "document", name=name))
            else:  # bare base64, as OpenAI's own examples send it
                parts.append(MediaPart(kind="document", media_type="application/pdf", data=b64decode(file_data, "file"), name=name))
        elif kind == "input_audio":
            au = f.require(p, "input_audio", dict, pw)
            fmt = f.require(au, "format", str, pw + "input_audio.")
            parts.append(MediaPart(kind="audio", media_type=f"audio/{fmt}", data=b64decode(f.require(au, "data", str), "audio")))
        else:
            raise Unprocessable(f"{pw}type '{kind}' is not supported", code="invalid_value", param=f"{pw}type")
    return parts


def _parse_tools(body: dict[str, Any]) -> list[Tool] | None:
    raw = f.optional(body, "tools", list)
    if raw is None:
        legacy = f.optional(body, "functions", list)
        raw = [{"type": "function", "function": fn} for fn in legacy] if legacy else None
    if raw is None:
        return None
    tools = []
    for i, t in enumerate(raw):
        fn = f.require(f.check(t, f"tools[{i}]", dict), "function", dict, f"tools[{i}].")
        tools.append(
            Tool(name=f.require(fn, "name", str, f"tools[{i}].function."), description=fn.get("description"), parameters=fn.get("parameters"))
        )
    return tools


def _parse_tool_choice(tc: Any) -> ToolChoice | None:
    if tc is None:
        return None
    if isinstance(tc, str):
        if tc not in ("auto", "none", "required"):
            raise Unprocessable(f"tool_choice '{tc}' is not one of auto, none, required", param="tool_choice")
        return ToolChoice(mode=tc)  # type: ignore[arg-type]
    if isinstance(tc, dict):
        name = (tc.get("function") or {}).get("name") or tc.get("name")
        if not isinstance(name, str):
            raise Unprocessable("tool_choice.function.name is required", param="tool_choice")
        return ToolChoice(mode="function", name=name)
    raise Unprocessable("tool_choice must be a string or an object", param="tool_choice")


def _parse_response_format(rf: dict[str, Any] | None) -> ResponseFormat | None:
    if rf is None:
        return None
    kind = rf.get("type")
    if kind == "json_schema":
        js = rf.get("json_schema") or {}
        return ResponseFormat("json_schema", schema=js.get("schema"), name=js.get("name"), strict=js.get("strict"))
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    raise Unprocessable(f"response_format.type '{kind}' is not one of text, json_object, json_schema", param="response_format")


# ---------------------------------------------------------------- chat request, outbound


def render_chat_request(req: ChatRequest, model: str, *, stream_usage: bool = True, limit_field: str | None = None) -> dict[str, Any]:
    """The canonical request as an OpenAI body for upstream `model` (`limit_field`: the name of the
    output limit, when the model is named elsewhere, as Azure's deployment path does)."""
    body: dict[str, Any] = dict(req.extra) if req.raw_format == FORMAT else {}
    body["model"] = model
    body["messages"] = [render_message(m) for m in req.messages]
    if req.stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    for key in ("temperature", "top_p", "stop", "n", "seed", "presence_penalty", "frequency_penalty", "user", "parallel_tool_calls"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.max_tokens is not None:
        body[limit_field or output_limit_field(model)] = req.max_tokens
    if req.tools is not None:
        body["tools"] = [render_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        tc = req.tool_choice
        body["tool_choice"] = {"type": "function", "function": {"name": tc.name}} if tc.mode == "function" else tc.mode
    if req.response_format is not None:
        rf = req.response_format
        if rf.type == "json_schema":
            js: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema or {}}
            if rf.strict is not None:
                js["strict"] = rf.strict
            body["response_format"] = {"type": "json_schema", "json_schema": js}
        else:
            body["response_format"] = {"type": rf.type}
    return body


# Reasoning models refuse `max_tokens` ("use max_completion_tokens instead"); older servers know
# only `max_tokens`. By the upstream model's name, as OpenAI and Azure name them.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def output_limit_field(model: str) -> str:
    name = model.rsplit("/", 1)[-1].lower()
    return "max_completion_tokens" if name.startswith(_REASONING_PREFIXES) else "max_tokens"


def render_tool(t: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    fn["parameters"] = t.parameters if t.parameters is not None else {"type": "object", "properties": {}}
    return {"type": "function", "function": fn}


def render_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
        out["content"] = m.text()
        return out
    if len(m.content) <= 1 and all(isinstance(p, TextPart) for p in m.content):
        text = m.text()
        out["content"] = text if (text or not m.tool_calls) else None
    else:
        out["content"] = [render_part(p) for p in m.content]
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}} for tc in m.tool_calls
        ]
    if m.name and m.role == "user":
        out["name"] = m.name
    return out


def render_part(p: Part) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if p.kind == "image":
        img: dict[str, Any] = {"url": p.url if p.url else data_uri(p)}
        if p.detail:
            img["detail"] = p.detail
        return {"type": "image_url", "image_url": img}
    if p.kind == "audio" and p.data is not None:
        fmt = (p.media_type or "audio/wav").split("/")[-1].replace("mpeg", "mp3")
        return {"type": "input_audio", "input_audio": {"data": b64encode(p.data), "format": fmt}}
    if p.data is None:
        raise BadRequest(f"a {p.kind} URL cannot be sent to this model; send the bytes", code="unsupported_media")
    fl: dict[str, Any] = {"file_data": data_uri(p)}
    fl["filename"] = p.name or "document.pdf"
    return {"type": "file", "file": fl}


def merge_consecutive_roles(messages: list[Message]) -> list[Message]:
    """Join consecutive user or assistant turns (servers such as Gemma on vLLM demand alternation)."""
    out: list[Message] = []
    for m in messages:
        prev = out[-1] if out else None
        if prev is not None and prev.role == m.role and m.role in ("user", "assistant", "system") and not prev.tool_calls:
            prev.content = prev.content + m.content
            prev.tool_calls = prev.tool_calls + m.tool_calls
        else:
            out.append(Message(m.role, list(m.content), list(m.tool_calls), m.tool_call_id, m.name))
    return out


def needs_merge(messages: list[Message]) -> bool:
    return any(a.role == b.role and a.role in ("user", "assistant", "system") for a, b in zip(messages, messages[1:]))


# ---------------------------------------------------------------- chat response


def parse_usage(u: dict[str, Any] | None) -> Usage:
    if not u:
        return Usage()
    ptd = u.get("prompt_tokens_details") or {}
    ctd = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        cached_tokens=int(ptd.get("cached_tokens") or 0),
        reasoning_tokens=int(ctd.get("reasoning_tokens") or 0),
    )


def render_usage(u: Usage, cost: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
    }
    if u.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": u.cached_tokens}
    if u.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    if cost is not None:
        out["estimated_cost"] = cost
    return out


def parse_chat_response(body: dict[str, Any]) -> ChatResponse:
    choices = []
    for c in body.get("choices") or []:
        msg = c.get("message") or {}
        content = msg.get("content")
        parts: list[Part] = [TextPart(content)] if isinstance(content, str) else []
        if isinstance(content, list):  # some servers answer with parts
            parts = [TextPart(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"]
        tool_calls = [
            ToolCall(id=tc.get("id") or "", name=(tc.get("function") or {}).get("name", ""), arguments=(tc.get("function") or {}).get("arguments") or "")
            for tc in msg.get("tool_calls") or []
        ]
        choices.append(
            Choice(index=int(c.get("index", len(choices))), message=Message("assistant", parts, tool_calls), finish_reason=_finish(c.get("finish_reason")))
        )
    return ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        created=int(body.get("created") or time.time()),
        choices=choices,
        usage=parse_usage(body.get("usage")),
        raw=body,
        raw_format=FORMAT,
    )


def _finish(reason: Any) -> Any:
    if reason == "function_call":
        return "tool_calls"
    return reason if reason in _FINISH else ("stop" if reason else None)


def render_chat_response(resp: ChatResponse, model: str | None = None) -> dict[str, Any]:
    """The canonical answer as an OpenAI chat.completion body (with lmgate's estimated_cost)."""
    if resp.raw_format == FORMAT and resp.raw is not None:
        body = resp.raw
        usage = body.get("usage")
        if not isinstance(usage, dict) or not usage.get("prompt_tokens") and resp.usage.input_tokens:
            body["usage"] = render_usage(resp.usage, resp.cost_usd)
        else:
            usage["estimated_cost"] = resp.cost_usd
        return body
    choices = []
    for c in resp.choices:
        m = c.message
        msg: dict[str, Any] = {"role": "assistant", "content": m.text() if (m.content or not m.tool_calls) else None}
        if m.tool_calls:
            msg["tool_calls"] = [
                {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}} for tc in m.tool_calls
            ]
        choices.append({"index": c.index, "message": msg, "logprobs": None, "finish_reason": c.finish_reason})
    return {
        "id": resp.id if resp.id.startswith("chatcmpl") else f"chatcmpl-{resp.id}",
        "object": "chat.completion",
        "created": resp.created,
        "model": model or resp.model,
        "choices": choices,
        "usage": render_usage(resp.usage, resp.cost_usd),
    }


# ---------------------------------------------------------------- chat stream


def chunk_events(chunk: dict[str, Any]) -> list[StreamEvent]:
    """One parsed `chat.completion.chunk` as canonical events (usage included, if present)."""
    events: list[StreamEvent] = []
    for c in chunk.get("choices") or ():
        idx = int(c.get("index") or 0)
        delta = c.get("delta") or {}
        text = delta.get("content")
        if text:
            events.append(TextDelta(text, idx))
        for tc in delta.get("tool_calls") or ():
            fn = tc.get("function") or {}
            events.append(ToolCallDelta(int(tc.get("index") or 0), tc.get("id"), fn.get("name"), fn.get("arguments") or "", idx))
        reason = c.get("finish_reason")
        if reason:
            events.append(StreamFinish(_finish(reason), idx))
    usage = chunk.get("usage")
    if usage:
        events.append(StreamUsage(parse_usage(usage)))
    return events


def decode_frames(data: bytes) -> list[StreamEvent]:
    """The events of a same-format RawChunk: one or more whole `data: {...}` SSE frames."""
    events: list[StreamEvent] = []
    for frame in data.split(b"\n\n"):
        if frame.startswith(b"data: ") and frame != b"data: [DONE]":
            events.extend(chunk_events(orjson.loads(frame[6:])))
    return events


class ChunkRenderer:
    """Canonical stream events as OpenAI `chat.completion.chunk` SSE frames.

    Same-format RawChunks are forwarded as they are; the role-opening chunk is synthesised only
    when the upstream spoke another protocol.
    """

    __slots__ = ("id", "model", "created", "include_usage", "_started")

    def __init__(self, include_usage: bool, model: str | None = None) -> None:
        self.id = ""
        self.model = model or ""
        self.created = int(time.time())
        self.include_usage = include_usage
        self._started = False

    def _frame(self, choices: list[dict[str, Any]], **more: Any) -> bytes:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": choices}
        body.update(more)
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def _open(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._frame([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}])

    def render(self, ev: StreamEvent) -> bytes:
        if isinstance(ev, RawChunk):
            if ev.format == FORMAT:  # whole SSE frames, as the upstream sent them
                self._started = True
                return ev.data
            return b"".join(self.render(inner) for inner in decode_raw(ev))
        if isinstance(ev, StreamStart):
            self.id = ev.id if ev.id.startswith("chatcmpl") else f"chatcmpl-{ev.id}"
            self.model = self.model or ev.model
            self.created = ev.created
            return b""
        if isinstance(ev, TextDelta):
            return self._open() + self._frame([{"index": ev.index, "delta": {"content": ev.text}, "logprobs": None, "finish_reason": None}])
        if isinstance(ev, ToolCallDelta):
            call: dict[str, Any] = {"index": ev.call_index}
            if ev.id is not None:
                call["id"] = ev.id
                call["type"] = "function"
            fn: dict[str, Any] = {"arguments": ev.arguments}
            if ev.name is not None:
                fn["name"] = ev.name
            call["function"] = fn
            return self._open() + self._frame([{"index": ev.index, "delta": {"tool_calls": [call]}, "logprobs": None, "finish_reason": None}])
        if isinstance(ev, StreamFinish):
            return self._open() + self._frame([{"index": ev.index, "delta": {}, "logprobs": None, "finish_reason": ev.finish_reason}])
        if isinstance(ev, StreamUsage):
            if not self.include_usage:
                return b""
            return self._open() + self._frame([], usage=render_usage(ev.usage, ev.cost_usd))
        return b""


# ---------------------------------------------------------------- embeddings


def parse_embedding_request(body: dict[str, Any]) -> EmbeddingRequest:
    model = f.require(body, "model", str)
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        inputs = [raw_input]
    elif isinstance(raw_input, list) and raw_input and all(isinstance(x, str) for x in raw_input):
        inputs = raw_input
    elif raw_input is None:
        raise BadRequest("missing required field 'input'", code="missing_field", param="input")
    else:
        raise Unprocessable("field 'input' must be a string or a non-empty array of strings", param="input")
    # 003 sends encodingFormat and input_type (Cohere's); accept both spellings.
    encoding = body.get("encoding_format", body.get("encodingFormat"))
    if encoding is not None and encoding not in ("float", "base64"):
        raise Unprocessable("encoding_format must be 'float' or 'base64'", param="encoding_format")
    input_type = body.get("input_type", body.get("inputType"))
    if input_type is not None and not isinstance(input_type, str):
        raise Unprocessable("input_type must be a string", param="input_type")
    known = {"model", "input", "encoding_format", "encodingFormat", "input_type", "inputType", "dimensions", "user"}
    return EmbeddingRequest(
        model=model,
        inputs=inputs,
        input_type=input_type,
        dimensions=f.positive_int(body, "dimensions"),
        encoding_format=encoding,
        user=f.optional(body, "user", str),
        extra={k: v for k, v in body.items() if k not in known},
        raw=body,
        raw_format=FORMAT,
    )


def render_embedding_request(req: EmbeddingRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = dict(req.extra) if req.raw_format == FORMAT else {}
    body["model"] = model
    body["input"] = req.inputs
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    if req.user is not None:
        body["user"] = req.user
    return body


def parse_embedding_response(body: dict[str, Any]) -> EmbeddingResponse:
    data = sorted(body.get("data") or [], key=lambda d: d.get("index", 0))
    vectors: list[list[float]] = []
    for d in data:
        emb = d.get("embedding")
        if isinstance(emb, str):  # base64 little-endian float32
            raw = base64.b64decode(emb)
            emb = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        vectors.append(emb or [])
    u = body.get("usage") or {}
    usage = Usage(input_tokens=int(u.get("prompt_tokens") or u.get("total_tokens") or 0))
    return EmbeddingResponse(model=str(body.get("model") or ""), vectors=vectors, usage=usage, raw=body, raw_format=FORMAT)


def render_embedding_response(resp: EmbeddingResponse, model: str, encoding_format: str | None = None) -> dict[str, Any]:
    def enc(v: list[float]) -> Any:
        if encoding_format == "base64":
            return base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
        return v

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": enc(v)} for i, v in enumerate(resp.vectors)],
        "model": model,
        "usage": {"prompt_tokens": resp.usage.input_tokens, "total_tokens": resp.usage.input_tokens, "estimated_cost": resp.cost_usd},
    }


# ---------------------------------------------------------------- errors


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
