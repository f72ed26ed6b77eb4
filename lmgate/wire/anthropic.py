"""The Anthropic Messages wire format (`/v1/messages`), both directions; pure functions, no I/O.

Used inbound by the Anthropic surface and the Bedrock surface's Anthropic routes, outbound by
the anthropic provider and the bedrock provider's InvokeModel path. The SSE event sequence
lives in `anthropic_stream`.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import orjson

from lmgate.errors import BadRequest, GatewayError, Unprocessable
from lmgate.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    MediaPart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)
from lmgate.wire import fields as f
from lmgate.wire.media import b64decode, b64encode

FORMAT = "anthropic"
BEDROCK_VERSION = "bedrock-2023-05-31"  # the anthropic_version InvokeModel takes
DEFAULT_MAX_TOKENS = 4096  # when neither the request nor the catalog says

# Request fields the canonical type models; the rest is `extra`, passed to Anthropic upstreams only.
_KNOWN = {
    "model", "messages", "system", "max_tokens", "stop_sequences", "stream", "temperature", "top_p", "top_k",
    "tools", "tool_choice", "metadata",
}
_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_SKIPPED_BLOCKS = {"thinking", "redacted_thinking"}  # model reasoning: no canonical form, not resent

# stop_reason <-> canonical finish reason
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal", "error": "end_turn"}

_ID_OK = re.compile(r"^[a-zA-Z0-9_-]+$")
_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def safe_tool_id(tool_id: str) -> str:
    """Anthropic and Bedrock accept tool ids matching ^[a-zA-Z0-9_-]+$; map others the same way both ways."""
    if tool_id and _ID_OK.match(tool_id):
        return tool_id
    return _ID_BAD.sub("_", tool_id) or "toolu_0"


def finish_reason(stop_reason: Any) -> Any:
    if stop_reason is None:
        return None
    return _FINISH.get(stop_reason, "stop")


def stop_reason(finish: str | None, has_tool_calls: bool = False) -> str:
    if has_tool_calls and finish in (None, "stop"):
        return "tool_use"
    return _STOP_REASON.get(finish or "stop", "end_turn")


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the object Anthropic and Bedrock carry."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


# ---------------------------------------------------------------- request, inbound


def parse_request(body: dict[str, Any], *, model: str | None = None) -> ChatRequest:
    """A Messages body as the canonical request. `model` is given for Bedrock's InvokeModel bodies,
    which name the model in the URL and carry `anthropic_version` instead."""
    if model is None:
        model = f.require(body, "model", str)
    max_tokens = f.require(body, "max_tokens", int)
    if max_tokens < 1:
        raise Unprocessable("max_tokens: must be at least 1", param="max_tokens")
    messages: list[Message] = []
    system = body.get("system")
    if system is not None:
        messages.append(Message("system", _parse_system(system)))
    raw_messages = f.require(body, "messages", list)
    if not raw_messages:
        raise BadRequest("messages: at least one message is required", param="messages")
    tool_names: dict[str, str] = {}
    for i, m in enumerate(raw_messages):
        messages.extend(_parse_message(m, i, tool_names))
    stop = f.optional(body, "stop_sequences", list)
    if stop is not None and not all(isinstance(s, str) for s in stop):
        raise Unprocessable("stop_sequences: must be an array of strings", param="stop_sequences")
    tools, parallel, tool_choice = _parse_tools(body)
    metadata = f.optional(body, "metadata", dict) or {}
    user = metadata.get("user_id")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=bool(f.optional(body, "stream", bool)),
        include_usage=True,  # Anthropic streams always carry usage
        max_tokens=max_tokens,
        temperature=f.number_in(body, "temperature", 0, 1),
        top_p=f.number_in(body, "top_p", 0, 1),
        top_k=f.optional(body, "top_k", int),
        stop=stop,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        user=user if isinstance(user, str) else None,
        extra={k: v for k, v in body.items() if k not in _KNOWN},
        raw=body,
        raw_format=FORMAT,
    )


def _parse_system(system: Any) -> list[Part]:
    if isinstance(system, str):
        return [TextPart(system)]
    if not isinstance(system, list):
        raise Unprocessable("system: must be a string or an array of text blocks", param="system")
    parts: list[Part] = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise Unprocessable(f"system.{i}.type: must be 'text'", param=f"system.{i}")
        parts.append(TextPart(f.require(block, "text", str, f"system.{i}.")))
    return parts


def _parse_message(m: Any, i: int, tool_names: dict[str, str]) -> list[Message]:
    where = f"messages.{i}."
    if not isinstance(m, dict):
        raise Unprocessable(f"messages.{i}: must be an object", param=f"messages.{i}")
    role = f.require(m, "role", str, where)
    if role not in ("user", "assistant"):
        raise Unprocessable(f"messages.{i}.role: must be 'user' or 'assistant'", param=f"{where}role")
    content = m.get("content")
    if content is None:
        raise BadRequest(f"messages.{i}.content: Field required", param=f"{where}content")
    if isinstance(content, str):
        return [Message(role, [TextPart(content)])]
    if not isinstance(content, list):
        raise Unprocessable(f"messages.{i}.content: must be a string or an array of blocks", param=f"{where}content")
    parts: list[Part] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for j, block in enumerate(content):
        bw = f"{where}content.{j}."
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(TextPart(f.require(block, "text", str, bw)))
        elif kind in ("image", "document"):
            parts.extend(parse_media_block(block, kind, bw))
        elif kind == "tool_use" and role == "assistant":
            call_id = f.require(block, "id", str, bw)
            name = f.require(block, "name", str, bw)
            tool_names[call_id] = name
            calls.append(ToolCall(call_id, name, orjson.dumps(block.get("input") or {}).decode()))
        elif kind == "tool_result" and role == "user":
            call_id = f.require(block, "tool_use_id", str, bw)
            results.append(Message("tool", _tool_result_parts(block.get("content"), bw), tool_call_id=call_id, name=tool_names.get(call_id)))
        elif kind in _SKIPPED_BLOCKS:
            continue
        else:
            raise Unprocessable(f"{bw}type '{kind}' is not supported here", param=f"{bw}type")
    out = results
    if parts or calls or not results:
        out = results + [Message(role, parts, calls)]
    return out


def parse_media_block(block: dict[str, Any], kind: str, where: str) -> list[Part]:
    source = f.require(block, "source", dict, where)
    stype = source.get("type")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    if stype == "base64":
        media_type = f.require(source, "media_type", str, where + "source.")
        data = b64decode(f.require(source, "data", str, where + "source."), kind)
        return [MediaPart(kind=kind, media_type=media_type, data=data, name=title)]  # type: ignore[arg-type]
    if stype == "url":
        url = f.require(source, "url", str, where + "source.")
        if not url.startswith(("http://", "https://")):
            raise BadRequest(f"{where}source.url: must be an http(s) URL", code="invalid_url")
        return [MediaPart(kind=kind, url=url, media_type="application/pdf" if kind == "document" else None, name=title)]  # type: ignore[arg-type]
    if kind == "document" and stype == "text":
        text = f.require(source, "data", str, where + "source.")
        return [MediaPart(kind="document", media_type=source.get("media_type") or "text/plain", data=text.encode(), name=title)]
    if kind == "document" and stype == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [TextPart(inner)]
        return [TextPart(b.get("text", "")) for b in inner or [] if isinstance(b, dict) and b.get("type") == "text"]
    raise Unprocessable(f"{where}source.type '{stype}' is not supported (use base64 or url)", param=f"{where}source.type")


def _tool_result_parts(content: Any, where: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise Unprocessable(f"{where}content: must be a string or an array of blocks", param=f"{where}content")
    parts: list[Part] = []
    for k, b in enumerate(content):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text":
            parts.append(TextPart(str(b.get("text", ""))))
        elif kind in ("image", "document"):
            parts.extend(parse_media_block(b, kind, f"{where}content.{k}."))
        else:
            raise Unprocessable(f"{where}content.{k}.type '{kind}' is not supported", param=f"{where}content.{k}.type")
    return parts


def _parse_tools(body: dict[str, Any]) -> tuple[list[Tool] | None, bool | None, ToolChoice | None]:
    raw = f.optional(body, "tools", list)
    tools = None
    if raw is not None:
        tools = []
        for i, t in enumerate(raw):
            t = f.check(t, f"tools.{i}", dict)
            if t.get("type") not in (None, "custom"):
                raise Unprocessable(f"tools.{i}.type '{t.get('type')}': server tools are not supported", param=f"tools.{i}.type")
            schema = f.require(t, "input_schema", dict, f"tools.{i}.")
            tools.append(Tool(name=f.require(t, "name", str, f"tools.{i}."), description=t.get("description"), parameters=schema))
    tc = f.optional(body, "tool_choice", dict)
    if tc is None:
        return tools, None, None
    kind = tc.get("type")
    parallel = False if tc.get("disable_parallel_tool_use") is True else None
    if kind == "auto":
        return tools, parallel, ToolChoice("auto")
    if kind == "any":
        return tools, parallel, ToolChoice("required")
    if kind == "none":
        return tools, parallel, ToolChoice("none")
    if kind == "tool":
        return tools, parallel, ToolChoice("function", f.require(tc, "name", str, "tool_choice."))
    raise Unprocessable("tool_choice.type: must be one of auto, any, tool, none", param="tool_choice.type")


# ---------------------------------------------------------------- request, outbound


def render_request(req: ChatRequest, model: str | None, default_max_tokens: int | None = None) -> dict[str, Any]:
    """The canonical request as a Messages body (`model` None: Bedrock's InvokeModel body)."""
    body: dict[str, Any] = {}
    if model is not None:
        body["model"] = model
    body["max_tokens"] = req.max_tokens or default_max_tokens or DEFAULT_MAX_TOKENS
    system = [p.text for m in req.messages if m.role == "system" for p in m.content if isinstance(p, TextPart) and p.text]
    if system:
        body["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": s} for s in system]
    turns, used_tools = render_turns(req.messages)
    body["messages"] = turns
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.temperature is not None:
        body["temperature"] = min(1.0, max(0.0, req.temperature))  # Anthropic's range is 0..1
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.top_k is not None:
        body["top_k"] = req.top_k
    if req.tools:
        body["tools"] = [render_tool(t) for t in req.tools]
        choice = render_tool_choice(req.tool_choice, req.parallel_tool_calls)
        if choice is not None:
            body["tool_choice"] = choice
    elif used_tools:
        # A history with tool blocks is only valid with tools defined (003's second call sends
        # none): declare the tools it used and forbid new calls.
        body["tools"] = [{"name": n, "description": "A tool used earlier in this conversation.", "input_schema": {"type": "object"}} for n in used_tools]
        body["tool_choice"] = {"type": "none"}
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.raw_format == FORMAT:
        for k, v in req.extra.items():
            if k not in ("anthropic_version", "anthropic_beta"):
                body.setdefault(k, v)
    if req.stream and model is not None:
        body["stream"] = True
    return body


def render_tool(t: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name}
    if t.description:
        out["description"] = t.description
    out["input_schema"] = t.parameters if t.parameters is not None else {"type": "object", "properties": {}}
    return out


def render_tool_choice(tc: ToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    if tc is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if parallel is False else None
    if tc.mode == "none":
        return {"type": "none"}
    out: dict[str, Any] = {"type": {"auto": "auto", "required": "any", "function": "tool"}[tc.mode]}
    if tc.mode == "function":
        out["name"] = tc.name
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def render_turns(messages: list[Message]) -> tuple[list[dict[str, Any]], list[str]]:
    """Canonical messages as alternating user/assistant turns; returns them and the tool names used."""
    turns: list[dict[str, Any]] = []
    used: dict[str, None] = {}
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            role = "user"
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": safe_tool_id(m.tool_call_id or "")}
            content = [render_part(p) for p in m.content if not (isinstance(p, TextPart) and not p.text)]
            if content and all(b["type"] == "text" for b in content):
                block["content"] = "".join(b["text"] for b in content)
            elif content:
                block["content"] = content
            blocks = [block]
        elif m.role == "assistant":
            role = "assistant"
            blocks = [render_part(p) for p in m.content if not (isinstance(p, TextPart) and not p.text)]
            for tc in m.tool_calls:
                used[tc.name] = None
                blocks.append({"type": "tool_use", "id": safe_tool_id(tc.id), "name": tc.name, "input": tool_input(tc.arguments)})
        else:
            role = "user"
            blocks = [render_part(p) for p in m.content if not (isinstance(p, TextPart) and not p.text)]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            merged = turns[-1]["content"] + blocks
            if role == "user":  # tool results must open the turn that answers the calls
                merged = [b for b in merged if b["type"] == "tool_result"] + [b for b in merged if b["type"] != "tool_result"]
            turns[-1]["content"] = merged
        else:
            turns.append({"role": role, "content": blocks})
    if turns and turns[-1]["role"] == "assistant":  # a prefill may not end in white space
        last = turns[-1]["content"]
        if last and last[-1]["type"] == "text":
            last[-1]["text"] = last[-1]["text"].rstrip()
            if not last[-1]["text"]:
                last.pop()
        if not last:
            turns.pop()
    for t in turns:  # one plain text block reads more naturally as a string
        if len(t["content"]) == 1 and t["content"][0]["type"] == "text":
            t["content"] = t["content"][0]["text"]
    return turns, list(used)


def render_part(p: Part) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if p.kind == "image":
        if p.data is None:
            return {"type": "image", "source": {"type": "url", "url": p.url}}
        media_type = (p.media_type or "").lower().replace("image/jpg", "image/jpeg")
        if media_type not in _IMAGE_TYPES:
            raise BadRequest(f"image type '{p.media_type}' is not supported by Anthropic models (jpeg, png, gif, webp)", code="unsupported_media")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": b64encode(p.data)}}
    if p.kind == "document":
        out: dict[str, Any]
        mt = (p.media_type or "application/pdf").lower()
        if p.data is None:
            out = {"type": "document", "source": {"type": "url", "url": p.url}}
        elif mt == "application/pdf":
            out = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64encode(p.data)}}
        elif mt.startswith("text/") or mt in ("application/json", "application/xml"):
            out = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": p.data.decode("utf-8", "replace")}}
        else:
            raise BadRequest(f"document type '{p.media_type}' is not supported by Anthropic models (PDF or text)", code="unsupported_media")
        if p.name:
            out["title"] = p.name
        return out
    raise BadRequest(f"{p.kind} input is not supported by Anthropic models", code="unsupported_media")


# ---------------------------------------------------------------- response


def parse_usage(u: dict[str, Any] | None) -> Usage:
    """Anthropic counts cache reads and writes beside input_tokens; the canonical input is their sum."""
    if not u:
        return Usage()
    cached = int(u.get("cache_read_input_tokens") or 0)
    written = int(u.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(u.get("input_tokens") or 0) + cached + written,
        output_tokens=int(u.get("output_tokens") or 0),
        cached_tokens=cached,
        cache_write_tokens=written,
    )


def render_usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": max(0, u.input_tokens - u.cached_tokens - u.cache_write_tokens),
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.output_tokens,
    }


def parse_response(body: dict[str, Any]) -> ChatResponse:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in body.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            calls.append(ToolCall(str(block.get("id") or ""), str(block.get("name") or ""), orjson.dumps(block.get("input") or {}).decode()))
    text = "".join(texts)
    content: list[Part] = [TextPart(text)] if text or not calls else []
    return ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        created=int(time.time()),
        choices=[Choice(0, Message("assistant", content, calls), finish_reason(body.get("stop_reason")) or "stop")],
        usage=parse_usage(body.get("usage")),
        raw=body,
        raw_format=FORMAT,
    )


def render_response(resp: ChatResponse, model: str | None = None) -> dict[str, Any]:
    """The canonical answer as an Anthropic `message` object."""
    if resp.raw_format == FORMAT and resp.raw is not None:
        return resp.raw
    choice = resp.choices[0] if resp.choices else Choice(0, Message("assistant", []), "stop")
    m = choice.message
    content: list[dict[str, Any]] = []
    text = m.text()
    if text or not m.tool_calls:
        content.append({"type": "text", "text": text})
    for tc in m.tool_calls:
        content.append({"type": "tool_use", "id": tc.id or new_id("toolu_"), "name": tc.name, "input": tool_input(tc.arguments)})
    return {
        "id": resp.id if resp.id.startswith("msg") else new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model or resp.model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason, bool(m.tool_calls)),
        "stop_sequence": None,
        "usage": render_usage(resp.usage),
    }


# ---------------------------------------------------------------- errors


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(exc: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "error": {"type": error_type(exc.status), "message": exc.message}}
    if request_id:
        out["request_id"] = request_id
    return out
