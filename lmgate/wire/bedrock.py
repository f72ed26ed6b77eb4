"""AWS Bedrock's Converse wire format (and the Nova/Llama InvokeModel bodies), both directions.

Shapes follow the bedrock-runtime service model: blobs travel as base64 strings in JSON, content
is a list of one-key blocks (text, image, document, video, audio, toolUse, toolResult), the system
prompt a list of text blocks, sampling in `inferenceConfig`, tools in `toolConfig`. Pure
functions; the ConverseStream events live in `bedrock_stream`.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import orjson

from lmgate.errors import BadRequest, GatewayError, Unprocessable
from lmgate.types import ChatRequest, ChatResponse, Choice, MediaPart, Message, Part, TextPart, Tool, ToolCall, ToolChoice, Usage
from lmgate.wire import fields as f
from lmgate.wire.anthropic import tool_input
from lmgate.wire.media import b64decode, b64encode

FORMAT = "bedrock"  # a Converse-shaped request (raw_format)

IMAGE_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
DOCUMENT_FORMATS = {
    "pdf": "application/pdf",
    "csv": "text/csv",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "txt": "text/plain",
    "md": "text/markdown",
}
VIDEO_FORMATS = {
    "mkv": "video/x-matroska", "mov": "video/quicktime", "mp4": "video/mp4", "webm": "video/webm", "flv": "video/x-flv",
    "mpeg": "video/mpeg", "mpg": "video/mpg", "wmv": "video/x-ms-wmv", "three_gp": "video/3gpp",
}
AUDIO_FORMATS = {
    "mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "aac": "audio/aac", "opus": "audio/opus",
    "webm": "audio/webm", "m4a": "audio/mp4", "pcm": "audio/pcm",
}
_FORMATS = {"image": IMAGE_FORMATS, "document": DOCUMENT_FORMATS, "video": VIDEO_FORMATS, "audio": AUDIO_FORMATS}
_FORMAT_OF = {kind: {mt: fmt for fmt, mt in table.items()} for kind, table in _FORMATS.items()}
_FORMAT_OF["image"]["image/jpg"] = "jpeg"
_FORMAT_OF["document"].update({"text/x-markdown": "md", "application/json": "txt", "text/xml": "txt"})
_FORMAT_OF["audio"].update({"audio/mp3": "mp3", "audio/x-wav": "wav", "audio/wave": "wav"})
_FORMAT_OF["video"].update({"video/mpeg": "mpeg", "video/3gp": "three_gp"})

_FINISH = {
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "content_filtered": "content_filter", "guardrail_intervened": "content_filter",
    "malformed_model_output": "error", "malformed_tool_use": "error",
}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "content_filtered", "error": "end_turn"}
_SKIPPED = {"cachePoint", "reasoningContent", "citationsContent"}
_DOC_NAME_BAD = re.compile(r"[^A-Za-z0-9\-\(\)\[\] ]+")
_TOOL_ID_BAD = re.compile(r"[^a-zA-Z0-9_.:-]")


def finish_reason(stop: Any) -> Any:
    return None if stop is None else _FINISH.get(stop, "stop")


def stop_reason(finish: str | None, has_tool_calls: bool = False) -> str:
    if has_tool_calls and finish in (None, "stop"):
        return "tool_use"
    return _STOP.get(finish or "stop", "end_turn")


def safe_tool_id(tool_id: str) -> str:
    """Bedrock's ToolUseId: [a-zA-Z0-9_.:-]{1,64}."""
    return (_TOOL_ID_BAD.sub("_", tool_id) or "tooluse_0")[:64]


# ---------------------------------------------------------------- request, inbound


def parse_request(body: dict[str, Any], model: str, *, native: bool = False) -> ChatRequest:
    """A Converse body (or, `native`, a Nova InvokeModel body) as the canonical request."""
    messages: list[Message] = []
    system = f.optional(body, "system", list)
    if system:
        parts: list[Part] = []
        for i, block in enumerate(system):
            block = f.check(block, f"system.{i}", dict)
            if "text" in block:
                parts.append(TextPart(f.check(block["text"], "text", str, f"system.{i}.")))
        if parts:
            messages.append(Message("system", parts))
    raw_messages = f.require(body, "messages", list)
    if not raw_messages:
        raise BadRequest("messages: a conversation must start with a user message", param="messages")
    names: dict[str, str] = {}
    for i, m in enumerate(raw_messages):
        messages.extend(_parse_message(m, i, names))
    config = f.optional(body, "inferenceConfig", dict) or {}
    max_tokens = config.get("maxTokens", config.get("max_new_tokens") if native else None)
    if max_tokens is not None:
        max_tokens = f.check(max_tokens, "maxTokens", int, "inferenceConfig.")
        if max_tokens < 1:
            raise Unprocessable("inferenceConfig.maxTokens: must be at least 1", param="inferenceConfig.maxTokens")
    stop = config.get("stopSequences")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise Unprocessable("inferenceConfig.stopSequences: must be an array of strings", param="inferenceConfig.stopSequences")
    top_k = config.get("topK") if native else None
    tools, choice = _parse_tool_config(f.optional(body, "toolConfig", dict))
    return ChatRequest(
        model=model,
        messages=messages,
        include_usage=True,
        max_tokens=max_tokens,
        temperature=f.number_in(config, "temperature", 0, 1),
        top_p=f.number_in(config, "topP", 0, 1),
        top_k=top_k if isinstance(top_k, int) and not isinstance(top_k, bool) else None,
        stop=stop,
        tools=tools,
        tool_choice=choice,
        extra={k: v for k, v in body.items() if k not in ("messages", "system", "inferenceConfig", "toolConfig", "schemaVersion")},
        raw=None if native else body,
        raw_format=None if native else FORMAT,
    )


def _parse_message(m: Any, i: int, names: dict[str, str]) -> list[Message]:
    where = f"messages.{i}."
    m = f.check(m, f"messages.{i}", dict)
    role = f.require(m, "role", str, where)
    if role not in ("user", "assistant"):
        raise Unprocessable(f"messages.{i}.role: must be user or assistant", param=f"{where}role")
    content = f.require(m, "content", list, where)
    parts: list[Part] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for j, block in enumerate(content):
        bw = f"{where}content.{j}."
        block = f.check(block, f"{where}content.{j}", dict)
        if "text" in block:
            parts.append(TextPart(f.check(block["text"], "text", str, bw)))
        elif any(k in block for k in _FORMATS):
            kind = next(k for k in _FORMATS if k in block)
            parts.append(parse_media(block[kind], kind, bw + kind + "."))
        elif "toolUse" in block and role == "assistant":
            use = f.check(block["toolUse"], "toolUse", dict, bw)
            call_id = f.require(use, "toolUseId", str, bw + "toolUse.")
            name = f.require(use, "name", str, bw + "toolUse.")
            names[call_id] = name
            calls.append(ToolCall(call_id, name, orjson.dumps(use.get("input") if use.get("input") is not None else {}).decode()))
        elif "toolResult" in block and role == "user":
            res = f.check(block["toolResult"], "toolResult", dict, bw)
            call_id = f.require(res, "toolUseId", str, bw + "toolResult.")
            results.append(Message("tool", _result_parts(res.get("content") or [], bw + "toolResult."), tool_call_id=call_id, name=names.get(call_id)))
        elif "guardContent" in block:
            text = ((block["guardContent"] or {}).get("text") or {}).get("text")
            if isinstance(text, str):
                parts.append(TextPart(text))
        elif any(k in block for k in _SKIPPED):
            continue
        else:
            raise Unprocessable(f"{bw[:-1]}: content block {sorted(block)} is not supported", param=bw[:-1])
    if parts or calls or not results:
        return results + [Message(role, parts, calls)]
    return results


def parse_media(media: Any, kind: str, where: str) -> MediaPart:
    media = f.check(media, kind, dict, where[: -len(kind) - 1])
    fmt = f.require(media, "format", str, where)
    media_type = _FORMATS[kind].get(fmt)
    if media_type is None:
        raise Unprocessable(f"{where}format '{fmt}' is not one of {', '.join(_FORMATS[kind])}", param=f"{where}format")
    source = f.require(media, "source", dict, where)
    if "bytes" in source:
        data = b64decode(f.check(source["bytes"], "bytes", str, where + "source."), kind)
    elif "text" in source and kind == "document":
        data = str(source["text"]).encode()
        media_type = "text/plain"
    elif "s3Location" in source:
        raise BadRequest(f"{where}source.s3Location: S3 sources are not supported; send the bytes", code="unsupported_media")
    else:
        raise BadRequest(f"{where}source: send the content as base64 'bytes'", param=f"{where}source")
    name = media.get("name") if isinstance(media.get("name"), str) else None
    return MediaPart(kind=kind, media_type=media_type, data=data, name=name)  # type: ignore[arg-type]


def _result_parts(content: Any, where: str) -> list[Part]:
    parts: list[Part] = []
    for k, item in enumerate(f.check(content, "content", list, where)):
        item = f.check(item, f"content.{k}", dict, where)
        if "text" in item:
            parts.append(TextPart(str(item["text"])))
        elif "json" in item:
            parts.append(TextPart(orjson.dumps(item["json"]).decode()))
        elif any(key in item for key in ("image", "document", "video")):
            kind = next(key for key in ("image", "document", "video") if key in item)
            parts.append(parse_media(item[kind], kind, f"{where}content.{k}.{kind}."))
    return parts


def _parse_tool_config(tc: dict[str, Any] | None) -> tuple[list[Tool] | None, ToolChoice | None]:
    if tc is None:
        return None, None
    tools = []
    for i, t in enumerate(f.require(tc, "tools", list, "toolConfig.")):
        spec = f.check(t, f"toolConfig.tools.{i}", dict).get("toolSpec")
        if spec is None:
            continue  # cachePoint, system tools
        w = f"toolConfig.tools.{i}.toolSpec."
        schema = f.require(f.check(spec, "toolSpec", dict), "inputSchema", dict, w).get("json")
        tools.append(Tool(name=f.require(spec, "name", str, w), description=spec.get("description"), parameters=schema if isinstance(schema, dict) else None))
    choice = tc.get("toolChoice")
    if not isinstance(choice, dict) or not choice:
        return tools, None
    if "any" in choice:
        return tools, ToolChoice("required")
    if "tool" in choice:
        return tools, ToolChoice("function", f.require(choice["tool"] or {}, "name", str, "toolConfig.toolChoice.tool."))
    return tools, ToolChoice("auto")


# ---------------------------------------------------------------- request, outbound


def render_request(req: ChatRequest, default_max_tokens: int | None = None) -> dict[str, Any]:
    """The canonical request as a Converse body (the model goes in the URL). Media must be bytes."""
    body: dict[str, Any] = {}
    turns, used = render_turns(req.messages)
    body["messages"] = turns
    system = [{"text": p.text} for m in req.messages if m.role == "system" for p in m.content if isinstance(p, TextPart) and p.text.strip()]
    if system:
        body["system"] = system
    config: dict[str, Any] = {}
    max_tokens = req.max_tokens or default_max_tokens
    if max_tokens:
        config["maxTokens"] = max_tokens
    if req.temperature is not None:
        config["temperature"] = min(1.0, max(0.0, req.temperature))
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.stop:
        config["stopSequences"] = list(req.stop)
    if config:
        body["inferenceConfig"] = config
    tool_config = render_tool_config(req, used)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    if req.raw_format == FORMAT:
        for k, v in req.extra.items():
            body.setdefault(k, v)
    return body


def render_tool_config(req: ChatRequest, used: list[str]) -> dict[str, Any] | None:
    choice = req.tool_choice
    if req.tools and not (choice is not None and choice.mode == "none" and not used):
        tools = [
            {"toolSpec": {"name": t.name, **({"description": t.description} if t.description else {}), "inputSchema": {"json": t.parameters or {"type": "object", "properties": {}}}}}
            for t in req.tools
        ]
        out: dict[str, Any] = {"tools": tools}
        if choice is not None and choice.mode == "required":
            out["toolChoice"] = {"any": {}}
        elif choice is not None and choice.mode == "function":
            out["toolChoice"] = {"tool": {"name": choice.name}}
        elif choice is not None and choice.mode == "auto":
            out["toolChoice"] = {"auto": {}}
        return out
    if used:
        # toolUse/toolResult blocks need a toolConfig: declare the tools the history used.
        return {"tools": [{"toolSpec": {"name": n, "description": "A tool used earlier in this conversation.", "inputSchema": {"json": {"type": "object"}}}} for n in used]}
    return None


def render_turns(messages: list[Message]) -> tuple[list[dict[str, Any]], list[str]]:
    """Canonical messages as alternating Converse turns; returns them and the tool names used."""
    turns: list[dict[str, Any]] = []
    used: dict[str, None] = {}
    names: dict[str, int] = {}
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            role = "user"
            content = [render_part(p, names) for p in m.content if not (isinstance(p, TextPart) and not p.text)]
            blocks = [{"toolResult": {"toolUseId": safe_tool_id(m.tool_call_id or ""), "content": content or [{"json": {}}]}}]
        else:
            role = "assistant" if m.role == "assistant" else "user"
            blocks = [render_part(p, names) for p in m.content if not (isinstance(p, TextPart) and not p.text.strip())]
            for tc in m.tool_calls:
                used[tc.name] = None
                blocks.append({"toolUse": {"toolUseId": safe_tool_id(tc.id), "name": tc.name, "input": tool_input(tc.arguments)}})
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            merged = turns[-1]["content"] + blocks
            if role == "user":
                merged = [b for b in merged if "toolResult" in b] + [b for b in merged if "toolResult" not in b]
            turns[-1]["content"] = merged
        else:
            turns.append({"role": role, "content": blocks})
    return turns, list(used)


def document_name(name: str | None, taken: dict[str, int]) -> str:
    """Bedrock's document name: letters, digits, spaces, -()[], no double spaces, unique per request."""
    base = (name or "document").rsplit(".", 1)[0] if name and "." in name else (name or "document")
    base = " ".join(_DOC_NAME_BAD.sub("-", base).split())[:180] or "document"
    n = taken.get(base, 0)
    taken[base] = n + 1
    return base if n == 0 else f"{base} ({n + 1})"


def render_part(p: Part, names: dict[str, int]) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"text": p.text}
    if p.data is None:
        raise BadRequest(f"a {p.kind} URL cannot be sent to Bedrock; send the bytes", code="unsupported_media")
    mt = (p.media_type or "").lower().split(";")[0]
    fmt = _FORMAT_OF[p.kind].get(mt)
    if fmt is None and p.kind == "document" and mt.startswith("text/"):
        fmt = "txt"
    if fmt is None:
        raise BadRequest(f"{p.kind} type '{p.media_type}' is not supported by Bedrock ({', '.join(_FORMATS[p.kind])})", code="unsupported_media")
    block: dict[str, Any] = {"format": fmt, "source": {"bytes": b64encode(p.data)}}
    if p.kind == "document":
        block["name"] = document_name(p.name, names)
    return {p.kind: block}


# ---------------------------------------------------------------- response


def parse_usage(u: dict[str, Any] | None) -> Usage:
    """Bedrock counts cache reads and writes beside inputTokens; the canonical input is their sum."""
    if not u:
        return Usage()
    cached = int(u.get("cacheReadInputTokens") or u.get("cacheReadInputTokenCount") or 0)
    written = int(u.get("cacheWriteInputTokens") or u.get("cacheWriteInputTokenCount") or 0)
    return Usage(input_tokens=int(u.get("inputTokens") or 0) + cached + written, output_tokens=int(u.get("outputTokens") or 0), cached_tokens=cached, cache_write_tokens=written)


def render_usage(u: Usage, native: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "inputTokens": max(0, u.input_tokens - u.cached_tokens - u.cache_write_tokens),
        "outputTokens": u.output_tokens,
        "totalTokens": u.input_tokens + u.output_tokens,
    }
    if u.cached_tokens or u.cache_write_tokens:  # Nova's InvokeModel body names them ...TokenCount
        out["cacheReadInputTokenCount" if native else "cacheReadInputTokens"] = u.cached_tokens
        out["cacheWriteInputTokenCount" if native else "cacheWriteInputTokens"] = u.cache_write_tokens
    return out


def parse_response(body: dict[str, Any], response_id: str = "") -> ChatResponse:
    message = ((body.get("output") or {}).get("message")) or {}
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"] or {}
            calls.append(ToolCall(str(use.get("toolUseId") or ""), str(use.get("name") or ""), orjson.dumps(use.get("input") if use.get("input") is not None else {}).decode()))
    text = "".join(texts)
    return ChatResponse(
        id=response_id or "bedrock-" + os.urandom(12).hex(),
        model="",
        created=int(time.time()),
        choices=[Choice(0, Message("assistant", [TextPart(text)] if text or not calls else [], calls), finish_reason(body.get("stopReason")) or "stop")],
        usage=parse_usage(body.get("usage")),
        raw=body,
        raw_format=FORMAT,
    )


def _content(resp: ChatResponse) -> tuple[list[dict[str, Any]], str]:
    choice = resp.choices[0] if resp.choices else Choice(0, Message("assistant", []), "stop")
    m = choice.message
    content: list[dict[str, Any]] = []
    text = m.text()
    if text or not m.tool_calls:
        content.append({"text": text})
    for tc in m.tool_calls:
        content.append({"toolUse": {"toolUseId": tc.id or "tooluse_" + os.urandom(11).hex(), "name": tc.name, "input": tool_input(tc.arguments)}})
    return content, stop_reason(choice.finish_reason, bool(m.tool_calls))


def render_response(resp: ChatResponse, latency_ms: int) -> dict[str, Any]:
    """The canonical answer as a Converse response."""
    content, stop = _content(resp)
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": render_usage(resp.usage),
        "metrics": {"latencyMs": latency_ms},
    }


# ---------------------------------------------------------------- InvokeModel native bodies (Nova, Llama)


def invoke_family(body: dict[str, Any]) -> str:
    """Which native body an InvokeModel request carries: anthropic, nova (messages-v1) or llama."""
    if "anthropic_version" in body:
        return "anthropic"
    if isinstance(body.get("prompt"), str) and "messages" not in body:
        return "llama"
    if isinstance(body.get("messages"), list):
        first = body["messages"][0] if body["messages"] else {}
        content = first.get("content") if isinstance(first, dict) else None
        if isinstance(content, str) or (isinstance(content, list) and content and isinstance(content[0], dict) and "type" in content[0]):
            return "anthropic"
        return "nova"
    raise BadRequest("the InvokeModel body is not an Anthropic, Nova or Llama body", code="invalid_body")


def parse_llama(body: dict[str, Any], model: str) -> ChatRequest:
    """Llama's `{"prompt", "max_gen_len", "temperature", "top_p"}` as one user turn."""
    return ChatRequest(
        model=model,
        messages=[Message("user", [TextPart(f.require(body, "prompt", str))])],
        include_usage=True,
        max_tokens=f.positive_int(body, "max_gen_len"),
        temperature=f.number_in(body, "temperature", 0, 1),
        top_p=f.number_in(body, "top_p", 0, 1),
    )


def render_nova(resp: ChatResponse) -> dict[str, Any]:
    content, stop = _content(resp)
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop, "usage": render_usage(resp.usage, native=True)}


def render_llama(resp: ChatResponse) -> dict[str, Any]:
    choice = resp.choices[0] if resp.choices else None
    finish = choice.finish_reason if choice else "stop"
    return {
        "generation": choice.message.text() if choice else "",
        "prompt_token_count": resp.usage.input_tokens,
        "generation_token_count": resp.usage.output_tokens,
        "stop_reason": "length" if finish == "length" else "stop",
    }


# ---------------------------------------------------------------- errors

_ERROR_TYPES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    413: "ValidationException",
    422: "ValidationException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
    504: "ModelTimeoutException",
}


def error_type(exc: GatewayError) -> str:
    return _ERROR_TYPES.get(exc.status, "InternalServerException" if exc.status >= 500 else "ValidationException")


def stream_exception_type(exc: GatewayError) -> str:
    """The ConverseStream union member that carries a mid-stream failure (lowerCamel)."""
    t = {429: "throttlingException", 503: "serviceUnavailableException"}.get(exc.status)
    if t:
        return t
    return "validationException" if exc.status < 500 else "modelStreamErrorException" if exc.status in (502, 424) else "internalServerException"
