"""Cache keys: a blake2b digest of a compact canonical encoding of the request.

Only what changes the answer goes in: the client-facing model name, the messages (media bytes
hashed), tools, tool choice, response format and the sampling parameters. Never the key, the
request id, the stream flag, the end-user id or tool-call ids (surfaces invent those
differently), so one question asked through any surface lands on the same entry.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import orjson

from lmgate.types import ChatRequest, EmbeddingRequest, MediaPart, Message, TextPart

# Protocol fields kept in `extra` that never change what the model says.
_NEUTRAL_EXTRA = frozenset(
    {"metadata", "user", "anthropic_version", "stream_options", "store", "service_tier", "safety_identifier", "prompt_cache_key", "cachedContent"}
)
_OPTS = orjson.OPT_SORT_KEYS


def _media(p: MediaPart) -> list[Any]:
    ref = blake2b(p.data, digest_size=16).hexdigest() if p.data is not None else p.url
    return [p.kind, p.media_type, ref, p.detail]


def _message(m: Message) -> list[Any]:
    parts = m.content
    if len(parts) == 1 and type(parts[0]) is TextPart:
        content: Any = parts[0].text
    else:
        content = [p.text if type(p) is TextPart else _media(p) for p in parts]  # type: ignore[union-attr]
    if m.tool_calls:
        return [m.role, content, [[t.name, t.arguments] for t in m.tool_calls]]
    if m.name and m.role != "tool":
        return [m.role, content, m.name]
    return [m.role, content]


def _float(v: float | None) -> float | None:
    return None if v is None else float(v)


def _extra(extra: dict[str, Any]) -> dict[str, Any] | None:
    if not extra:
        return None
    kept = {k: v for k, v in extra.items() if k not in _NEUTRAL_EXTRA}
    return kept or None


def _digest(material: list[Any]) -> str:
    return blake2b(orjson.dumps(material, option=_OPTS, default=repr), digest_size=16).hexdigest()


def chat_parts(req: ChatRequest) -> tuple[list[Any], list[Any]]:
    """(messages, everything else) in canonical form."""
    tools = [[t.name, t.description, t.parameters] for t in req.tools] if req.tools else None
    tc = req.tool_choice
    choice = [tc.mode, tc.name] if tc is not None and (tc.mode != "auto" or tc.name) else None
    rf = req.response_format
    fmt = [rf.type, rf.schema, rf.strict] if rf is not None and rf.type != "text" else None
    params = [
        req.model,
        req.max_tokens,
        _float(req.temperature),
        _float(req.top_p),
        req.top_k,
        req.stop or None,
        req.n if req.n not in (None, 1) else None,
        req.seed,
        _float(req.presence_penalty),
        _float(req.frequency_penalty),
        req.parallel_tool_calls,
        tools,
        choice,
        fmt,
        _extra(req.extra),
    ]
    return [_message(m) for m in req.messages], params


def chat_key(req: ChatRequest, scope: str = "") -> str:
    messages, params = chat_parts(req)
    return "c" + scope + _digest([params, messages])


def context_key(req: ChatRequest, scope: str = "") -> tuple[str, str] | None:
    """For the semantic cache: (digest of everything but the last user message's text, that text).

    None when the last message is not a plain-text user message (tool turns, images).
    """
    if not req.messages:
        return None
    last = req.messages[-1]
    if last.role != "user" or last.tool_calls or any(type(p) is not TextPart for p in last.content):
        return None
    messages, params = chat_parts(req)
    return "s" + scope + _digest([params, messages[:-1]]), last.text()


def embedding_key(req: EmbeddingRequest, scope: str = "") -> str:
    return "e" + scope + _digest([req.model, req.inputs, req.input_type, req.dimensions, _extra(req.extra)])
