"""Gemini answers (GenerateContentResponse), both directions, and Google's error shape.

Used by the gemini and vertex providers (parse) and the Gemini surface (render). Pure functions.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from lmgate.types import ChatResponse, Choice, Message, Part, TextPart, ToolCall, Usage
from lmgate.wire.gemini import FORMAT, CallIds, g, tool_args

# finishReason -> canonical (ai.google.dev GenerateContentResponse.FinishReason).
_FINISH_IN = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}
_FINISH_OUT = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY", "error": "OTHER"}


def blocked_reason(body: dict[str, Any]) -> str | None:
    """promptFeedback.blockReason when the prompt itself was blocked (no candidates)."""
    if body.get("candidates"):
        return None
    fb = g(body, "promptFeedback")
    reason = g(fb, "blockReason")
    return str(reason) if reason else None


def finish_out(reason: str) -> str:
    return _FINISH_OUT.get(reason, "STOP")


def finish_in(reason: Any, has_calls: bool) -> Any:
    if reason is None:
        return None
    mapped = _FINISH_IN.get(str(reason), "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def parse_usage(meta: Any) -> Usage:
    """usageMetadata as Usage: the prompt includes cached and tool-use prompt tokens; thoughts are
    output (billed as output) and reported as reasoning tokens."""
    if not isinstance(meta, dict):
        return Usage()
    thoughts = int(g(meta, "thoughtsTokenCount") or 0)
    return Usage(
        input_tokens=int(g(meta, "promptTokenCount") or 0) + int(g(meta, "toolUsePromptTokenCount") or 0),
        output_tokens=int(g(meta, "candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(g(meta, "cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def render_usage(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": max(0, u.output_tokens - u.reasoning_tokens),
        "totalTokenCount": u.input_tokens + u.output_tokens,
    }
    if u.cached_tokens:
        out["cachedContentTokenCount"] = u.cached_tokens
    if u.reasoning_tokens:
        out["thoughtsTokenCount"] = u.reasoning_tokens
    return out


def candidate_message(cand: dict[str, Any], ids: CallIds) -> tuple[Message, bool]:
    """A candidate's content as an assistant message; minted call ids are written into `cand`."""
    content = g(cand, "content") or {}
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in g(content, "parts") or []:
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        if "text" in part:
            texts.append(str(part["text"]))
        fc = g(part, "functionCall")
        if isinstance(fc, dict):
            name = str(fc.get("name") or "")
            if not fc.get("id"):
                fc["id"] = ids.mint(name)
            calls.append(ToolCall(str(fc["id"]), name, orjson.dumps(fc.get("args") or {}).decode()))
    text = "".join(texts)
    parts: list[Part] = [TextPart(text)] if text or not calls else []
    return Message("assistant", parts, calls), bool(calls)


def parse_generate_response(body: dict[str, Any], ids: CallIds | None = None) -> ChatResponse:
    """A GenerateContentResponse as the canonical answer (the body is kept as `raw`)."""
    ids = ids or CallIds()
    choices = []
    for i, cand in enumerate(body.get("candidates") or []):
        if not isinstance(cand, dict):
            continue
        msg, has_calls = candidate_message(cand, ids)
        choices.append(Choice(int(cand.get("index", i) or 0), msg, finish_in(g(cand, "finishReason"), has_calls) or "stop"))
    return ChatResponse(
        id=str(g(body, "responseId") or ""),
        model=str(g(body, "modelVersion") or ""),
        created=int(time.time()),
        choices=choices,
        usage=parse_usage(g(body, "usageMetadata")),
        raw=body,
        raw_format=FORMAT,
    )


def render_candidate(msg: Message, finish: Any, index: int) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    text = msg.text()
    if text:
        parts.append({"text": text})
    for tc in msg.tool_calls:
        parts.append({"functionCall": {"id": tc.id, "name": tc.name, "args": tool_args(tc)}})
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts or [{"text": ""}]}, "index": index}
    if finish:
        cand["finishReason"] = finish_out(finish)
    return cand


def render_generate_response(resp: ChatResponse, model: str | None = None) -> dict[str, Any]:
    """The canonical answer as a GenerateContentResponse body."""
    if resp.raw_format == FORMAT and resp.raw is not None:
        return resp.raw
    return {
        "candidates": [render_candidate(c.message, c.finish_reason, c.index) for c in resp.choices],
        "usageMetadata": render_usage(resp.usage),
        "modelVersion": model or resp.model,
        "responseId": resp.id or f"lmgate-{int(time.time() * 1000)}",
    }


# ---------------------------------------------------------------- errors

STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 405: "INVALID_ARGUMENT",
    409: "ABORTED", 413: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
    500: "INTERNAL", 501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}


def error_body(status: int, message: str, reason: str | None = None) -> dict[str, Any]:
    """Google's error shape: {"error": {"code", "message", "status"}} (with the reason as ErrorInfo)."""
    err: dict[str, Any] = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "lmgate"}]
    return {"error": err}
