"""The Gemini generateContent wire format (AI Studio and Vertex AI), both directions.

Used inbound by the Gemini surface and outbound by the gemini and vertex providers. Pure
functions over parsed JSON; no I/O. Answers: `wire/gemini_response.py`; streams:
`wire/gemini_stream.py`; embeddings: `wire/gemini_embed.py`; schemas: `wire/gemini_schema.py`.

Tool-call ids: newer Gemini versions put an `id` on functionCall and expect it back on
functionResponse. Where the upstream gives none, lmgate mints one (and writes it into the
answer), and maps each tool result back to its call by the call's id, else by name and order.
"""

from __future__ import annotations

import mimetypes
import os
from typing import Any

import orjson

from lmgate.errors import BadRequest, Unprocessable
from lmgate.types import (
    ChatRequest,
    MediaPart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from lmgate.wire import fields as f
from lmgate.wire.gemini_schema import from_gemini_schema, has_properties, to_gemini_schema
from lmgate.wire.media import b64decode, b64encode, kind_of

FORMAT = "gemini"

# finishReason -> canonical (ai.google.dev GenerateContentResponse.FinishReason).
_MODES_IN = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
# generationConfig keys the canonical request models; the rest travel in extra to Gemini upstreams.
_GEN_KNOWN = frozenset(
    {"temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "candidateCount", "seed", "presencePenalty",
     "frequencyPenalty", "responseMimeType", "responseSchema", "responseJsonSchema"}
)
_TOP_KNOWN = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"})
_DEFAULT_TYPES = {"image": "image/jpeg", "document": "application/pdf", "audio": "audio/mpeg", "video": "video/mp4"}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def g(obj: Any, key: str, default: Any = None) -> Any:
    """A field by its proto-JSON name or its snake_case spelling (both are valid on Google's APIs)."""
    if not isinstance(obj, dict):
        return default
    if key in obj:
        return obj[key]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
    return obj.get(snake, default)


def _camel_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {camel(k): v for k, v in d.items()}


class CallIds:
    """Mints ids for function calls that came without one, and pairs results with calls by name
    and order when the results carry no id."""

    __slots__ = ("_n", "_open", "prefix")

    def __init__(self, prefix: str | None = None) -> None:
        """Without a prefix, ids are unique per answer (`call_<random>_<n>_<name>`); parsing a
        client's history uses a fixed prefix, so the same history always reads the same."""
        self._n = 0
        self._open: dict[str, list[str]] = {}
        self.prefix = prefix if prefix is not None else f"call_{os.urandom(6).hex()}_"

    def mint(self, name: str) -> str:
        self._n += 1
        return f"{self.prefix}{self._n}_{name}"[:64]

    def opened(self, name: str, call_id: str) -> None:
        self._open.setdefault(name, []).append(call_id)

    def answer(self, name: str, call_id: str | None) -> str:
        pending = self._open.get(name) or []
        if call_id:
            if call_id in pending:
                pending.remove(call_id)
            return call_id
        return pending.pop(0) if pending else self.mint(name)


# ---------------------------------------------------------------- request, inbound (Gemini surface)


def parse_generate_request(body: dict[str, Any], model: str, stream: bool = False) -> ChatRequest:
    """A GenerateContentRequest as the canonical request."""
    contents = g(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents is not specified", code="missing_field", param="contents")
    ids = CallIds("call_")
    messages: list[Message] = []
    system = g(body, "systemInstruction")
    if system is not None:
        text = _system_text(system)
        if text:
            messages.append(Message("system", [TextPart(text)]))
    for i, content in enumerate(contents):
        messages.extend(_parse_content(content, i, ids))
    gen = _camel_keys(f.check(g(body, "generationConfig") or {}, "generationConfig", dict))
    tools, native = _parse_tools(g(body, "tools"))
    extra: dict[str, Any] = {camel(k): v for k, v in body.items() if camel(k) not in _TOP_KNOWN}
    gen_extra = {k: v for k, v in gen.items() if k not in _GEN_KNOWN}
    if gen_extra:
        extra["generationConfig"] = gen_extra
    if native:
        extra["tools"] = native
    stop = gen.get("stopSequences")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=True,
        max_tokens=f.positive_int(gen, "maxOutputTokens"),
        temperature=f.optional(gen, "temperature", float),
        top_p=f.optional(gen, "topP", float),
        top_k=_int_or_none(f.optional(gen, "topK", float)),
        stop=list(stop) if isinstance(stop, list) else None,
        n=f.positive_int(gen, "candidateCount"),
        seed=f.optional(gen, "seed", int),
        presence_penalty=f.optional(gen, "presencePenalty", float),
        frequency_penalty=f.optional(gen, "frequencyPenalty", float),
        tools=tools,
        tool_choice=_parse_tool_choice(g(body, "toolConfig")),
        response_format=_parse_response_format(gen),
        extra=extra,
        raw=body,
        raw_format=FORMAT,
    )


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    parts = g(system, "parts") or []
    return "\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and "text" in p)


def _parse_content(content: Any, i: int, ids: CallIds) -> list[Message]:
    where = f"contents[{i}]"
    if not isinstance(content, dict):
        raise Unprocessable(f"{where} must be an object", param=where)
    role = content.get("role") or "user"
    if role not in ("user", "model", "function"):
        raise BadRequest(f"{where}.role '{role}' is not valid: use user or model", param=f"{where}.role")
    parts = g(content, "parts")
    if not isinstance(parts, list) or not parts:
        raise BadRequest(f"{where}.parts must not be empty", param=f"{where}.parts")
    out: list[Message] = []
    body: list[Part] = []
    calls: list[ToolCall] = []
    for k, p in enumerate(parts):
        pw = f"{where}.parts[{k}]"
        if not isinstance(p, dict):
            raise Unprocessable(f"{pw} must be an object", param=pw)
        if p.get("thought") is True:
            continue  # the model's thoughts are not sent back as prompt text
        if "text" in p:
            body.append(TextPart(f.check(p["text"], "text", str, pw + ".")))
        elif g(p, "inlineData") is not None:
            blob = g(p, "inlineData")
            mt = g(blob, "mimeType")
            if not isinstance(mt, str) or not mt:
                raise BadRequest(f"{pw}.inlineData.mimeType must be specified", param=f"{pw}.inlineData.mimeType")
            data = b64decode(str(g(blob, "data") or ""), f"{pw}.inlineData.data")
            body.append(MediaPart(kind=kind_of(mt), media_type=mt, data=data, name=g(blob, "displayName")))  # type: ignore[arg-type]
        elif g(p, "fileData") is not None:
            fd = g(p, "fileData")
            uri = g(fd, "fileUri")
            if not isinstance(uri, str) or not uri:
                raise BadRequest(f"{pw}.fileData.fileUri must be specified", param=f"{pw}.fileData.fileUri")
            mt = g(fd, "mimeType") or mimetypes.guess_type(uri.split("?", 1)[0])[0]
            body.append(MediaPart(kind=kind_of(mt), media_type=mt, url=uri, name=g(fd, "displayName")))  # type: ignore[arg-type]
        elif g(p, "functionCall") is not None:
            fc = g(p, "functionCall")
            name = f.require(fc, "name", str, f"{pw}.functionCall.")
            call_id = fc.get("id") or ids.mint(name)
            ids.opened(name, call_id)
            calls.append(ToolCall(call_id, name, orjson.dumps(fc.get("args") or {}).decode()))
        elif g(p, "functionResponse") is not None:
            fr = g(p, "functionResponse")
            name = f.require(fr, "name", str, f"{pw}.functionResponse.")
            if body:  # keep the order: text before the result stays before it
                out.append(Message("user", body))
                body = []
            call_id = ids.answer(name, fr.get("id"))
            result = fr.get("response")
            out.append(Message("tool", [TextPart(orjson.dumps(result if result is not None else {}).decode())], tool_call_id=call_id, name=name))
        # executableCode, codeExecutionResult, videoMetadata ...: not modelled
    if role == "model":
        if body or calls:
            out.append(Message("assistant", body, calls))
    elif body:
        out.append(Message("user", body))
    return out


def _parse_tools(raw: Any) -> tuple[list[Tool] | None, list[dict[str, Any]]]:
    if raw is None:
        return None, []
    tools: list[Tool] = []
    native: list[dict[str, Any]] = []
    for i, t in enumerate(f.check(raw, "tools", list)):
        if not isinstance(t, dict):
            raise Unprocessable(f"tools[{i}] must be an object", param=f"tools[{i}]")
        decls = g(t, "functionDeclarations")
        others = {camel(k): v for k, v in t.items() if camel(k) != "functionDeclarations"}
        if others:
            native.append(others)
        for j, d in enumerate(decls or []):
            name = f.require(d, "name", str, f"tools[{i}].functionDeclarations[{j}].")
            params = g(d, "parametersJsonSchema")
            if params is None and g(d, "parameters") is not None:
                params = from_gemini_schema(g(d, "parameters"))
            tools.append(Tool(name=name, description=d.get("description"), parameters=params))
    return (tools or None), native


def _parse_tool_choice(config: Any) -> ToolChoice | None:
    fcc = g(config, "functionCallingConfig")
    if not isinstance(fcc, dict):
        return None
    mode = _MODES_IN.get(str(fcc.get("mode") or "AUTO").upper(), "auto")
    names = g(fcc, "allowedFunctionNames") or []
    if mode == "required" and isinstance(names, list) and len(names) == 1:
        return ToolChoice("function", names[0])
    return ToolChoice(mode)  # type: ignore[arg-type]


def _parse_response_format(gen: dict[str, Any]) -> ResponseFormat | None:
    if gen.get("responseMimeType") != "application/json":
        return None
    schema = gen.get("responseJsonSchema")
    if schema is None and gen.get("responseSchema") is not None:
        schema = from_gemini_schema(gen["responseSchema"])
    return ResponseFormat("json_schema", schema=schema) if schema else ResponseFormat("json_object")


# ---------------------------------------------------------------- request, outbound (providers)


def render_generate_request(req: ChatRequest) -> dict[str, Any]:
    """The canonical request as a GenerateContentRequest body."""
    same = req.raw_format == FORMAT
    body: dict[str, Any] = {k: v for k, v in req.extra.items() if k not in ("generationConfig", "tools")} if same else {}
    system = req.system_text()
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    body["contents"] = render_contents(req.messages)
    tools: list[dict[str, Any]] = []
    if req.tools:
        tools.append({"functionDeclarations": [render_declaration(t) for t in req.tools]})
    if same and isinstance(req.extra.get("tools"), list):
        tools.extend(req.extra["tools"])
    if tools:
        body["tools"] = tools
    tc = req.tool_choice
    if tc is not None and (req.tools or tc.mode == "none"):
        fcc: dict[str, Any] = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY", "function": "ANY"}[tc.mode]}
        if tc.mode == "function" and tc.name:
            fcc["allowedFunctionNames"] = [tc.name]
        body["toolConfig"] = {"functionCallingConfig": fcc}
    gen = render_generation_config(req)
    if same and isinstance(req.extra.get("generationConfig"), dict):
        gen = {**req.extra["generationConfig"], **gen}
    if gen:
        body["generationConfig"] = gen
    return body


def render_generation_config(req: ChatRequest) -> dict[str, Any]:
    gen: dict[str, Any] = {}
    for attr, key in (
        ("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("max_tokens", "maxOutputTokens"),
        ("n", "candidateCount"), ("seed", "seed"), ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
    ):
        value = getattr(req, attr)
        if value is not None:
            gen[key] = value
    if req.stop:
        gen["stopSequences"] = list(req.stop)
    rf = req.response_format
    if rf is not None and rf.type != "text":
        gen["responseMimeType"] = "application/json"
        if rf.type == "json_schema" and rf.schema:
            gen["responseSchema"] = to_gemini_schema(rf.schema)
    return gen


def render_declaration(t: Tool) -> dict[str, Any]:
    d: dict[str, Any] = {"name": t.name}
    if t.description:
        d["description"] = t.description
    if has_properties(t.parameters):
        d["parameters"] = to_gemini_schema(t.parameters)
    return d


def render_contents(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages as `contents`: roles user/model, tool results as functionResponse parts of a user
    turn, consecutive same-role turns joined (parallel results share one turn, as Gemini wants)."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "assistant":
            role = "model"
            parts = [render_part(p) for p in m.content if not (isinstance(p, TextPart) and not p.text)]
            for tc in m.tool_calls:
                names[tc.id] = tc.name
                parts.append({"functionCall": {"id": tc.id, "name": tc.name, "args": tool_args(tc)}})
        elif m.role == "tool":
            role = "user"
            name = m.name or names.get(m.tool_call_id or "")
            if not name:
                raise BadRequest(f"the tool result for call '{m.tool_call_id}' answers no earlier tool call", param="messages")
            fr: dict[str, Any] = {"name": name, "response": _response_object(m.text())}
            if m.tool_call_id:
                fr["id"] = m.tool_call_id
            parts = [{"functionResponse": fr}]
        else:
            role = "user"
            parts = [render_part(p) for p in m.content]
        if not parts:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    if not out:
        raise BadRequest("the request has no user or assistant content for Gemini", param="messages")
    return out


def tool_args(tc: ToolCall) -> Any:
    """A call's JSON arguments as the object functionCall.args must be."""
    if not tc.arguments.strip():
        return {}
    try:
        value = orjson.loads(tc.arguments)
    except orjson.JSONDecodeError:
        raise BadRequest(f"the arguments of tool call '{tc.id}' are not valid JSON", param="messages") from None
    return value if isinstance(value, dict) else {"value": value}


def _response_object(text: str) -> dict[str, Any]:
    """A tool result as the JSON object functionResponse.response must be ("output" per Google's docs)."""
    try:
        value = orjson.loads(text) if text.strip() else ""
    except orjson.JSONDecodeError:
        value = text
    return value if isinstance(value, dict) else {"output": value}


def render_part(p: Part) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"text": p.text}
    mt = p.media_type or _guess_type(p)
    if p.data is not None:
        return {"inlineData": {"mimeType": mt, "data": b64encode(p.data)}}
    return {"fileData": {"mimeType": mt, "fileUri": p.url}}


def _guess_type(p: MediaPart) -> str:
    if p.url:
        guessed = mimetypes.guess_type(p.url.split("?", 1)[0])[0]
        if guessed:
            return guessed
    data = p.data or b""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return _DEFAULT_TYPES.get(p.kind, "application/octet-stream")
