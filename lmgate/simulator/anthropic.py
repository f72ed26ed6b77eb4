"""Anthropic Messages API: `/v1/messages` and `/v1/messages/count_tokens`.

Checked as Anthropic checks it (headers, required fields, role alternation, tool blocks,
media), answered with Anthropic's message and SSE event shapes. Bedrock's InvokeModel with
Anthropic bodies reuses `parse_messages`, `render_message` and `stream_events`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from aiohttp import web

from lmgate.simulator.answer import Plan, Prompt, make_plan
from lmgate.simulator.common import (
    CONTEXT_TOO_LONG, SimError, apply_knobs, bearer_token, json_response, key_rejected, new_id,
    read_json, resolve_knobs, sse, stream_frames,
)
from lmgate.simulator.knobs import Knobs

MESSAGE_PARAMS = frozenset(
    """model messages max_tokens system stop_sequences stream temperature top_p top_k tools
    tool_choice metadata thinking service_tier container mcp_servers context_management
    output_format output_config inference_geo""".split()
)
BLOCK_TYPES = ("text", "image", "document", "tool_use", "tool_result", "thinking",
               "redacted_thinking", "search_result", "server_tool_use", "web_search_tool_result",
               "container_upload")
IMAGE_MAGIC = {"image/png": (b"\x89PNG",), "image/jpeg": (b"\xff\xd8\xff",),
               "image/gif": (b"GIF87a", b"GIF89a"), "image/webp": (b"RIFF",)}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "refusal"}
_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified "
          "resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate "
          "limit (https://docs.anthropic.com/en/api/rate-limits); see the response headers for "
          "current usage. Please reduce the prompt length or the maximum tokens requested, or "
          "try again later. You may also contact sales at https://www.anthropic.com/contact-sales "
          "to discuss your options for a rate limit increase."),
    500: ("api_error", "Internal server error"),
    503: ("overloaded_error", "Overloaded"),
    529: ("overloaded_error", "Overloaded"),
}


def _bad(message: str) -> SimError:
    return SimError(400, message, etype="invalid_request_error")


def error_body(err: SimError, model: str = "") -> dict[str, Any]:
    if err.etype == CONTEXT_TOO_LONG and not err.message:
        err = SimError(err.status, "prompt is too long: 210000 tokens > 200000 maximum",
                       etype="invalid_request_error")
    etype, message = _ERRORS.get(
        err.status, ("api_error" if err.status >= 500 else "invalid_request_error",
                     f"Error {err.status}"))
    return {"type": "error",
            "error": {"type": err.etype or etype,
                      "message": err.message or message.format(model=model or "unknown")},
            "request_id": new_id("req_011", 21)}


def anthropic_error(err: SimError, model: str = "") -> web.Response:
    headers = {"request-id": new_id("req_011", 21)}
    if err.retry_after is not None:
        headers["retry-after"] = str(int(err.retry_after) if float(err.retry_after).is_integer()
                                     else err.retry_after)
    return json_response(error_body(err, model), status=err.status, headers=headers)


def check_auth(request: web.Request) -> None:
    key = request.headers.get("x-api-key")
    if key is None and bearer_token(request):
        key = bearer_token(request)
    if key is None or not key.strip():
        raise SimError(401, "x-api-key header is required", etype="authentication_error")
    if key_rejected(key):
        raise SimError(401, "invalid x-api-key", etype="authentication_error")
    version = request.headers.get("anthropic-version")
    if not version:
        raise _bad("anthropic-version: header is required")
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", version):
        raise _bad(f"anthropic-version: invalid version {version!r}")


def _check_source(block: dict[str, Any], where: str, kind: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict) or "type" not in source:
        raise _bad(f"{where}.source: Field required")
    stype = source["type"]
    if stype == "url":
        if not isinstance(source.get("url"), str):
            raise _bad(f"{where}.source.url.url: Field required")
        return
    if kind == "document" and stype in ("text", "content", "file"):
        return
    if kind == "image" and stype == "file":
        return
    if stype != "base64":
        raise _bad(f"{where}.source: Input tag '{stype}' found using 'type' does not match any "
                   "of the expected tags: 'base64', 'url'")
    media_type = source.get("media_type")
    allowed = IMAGE_MAGIC if kind == "image" else {"application/pdf": (b"%PDF",)}
    if media_type not in allowed:
        expected = " or ".join(f"'{m}'" for m in allowed)
        raise _bad(f"{where}.source.base64.media_type: Input should be {expected}")
    try:
        data = base64.b64decode(str(source.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{where}.source.base64.data: Invalid base64 data") from None
    if not data.startswith(allowed[media_type]):
        if kind == "image":
            fmt = media_type.split("/")[1]
            raise _bad(f"{where}.source.base64.data: The image was specified using the "
                       f"{media_type} media type, but does not appear to be a valid {fmt} image")
        raise _bad(f"{where}.source.base64.data: The PDF specified was not valid.")


def _tools(body: dict[str, Any], prompt: Prompt) -> None:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise _bad("tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _bad(f"tools.{i}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            continue  # server tools (web search, bash, ...) have their own shapes
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _bad(f"tools.{i}.custom.name: String should match pattern "
                       "'^[a-zA-Z0-9_-]{1,128}$'")
        if not isinstance(tool.get("input_schema"), dict):
            raise _bad(f"tools.{i}.custom.input_schema: Field required")
        prompt.tools.append((name, tool["input_schema"]))


def _system_chars(system: Any) -> int:
    if system is None:
        return 0
    if isinstance(system, str):
        return len(system)
    if isinstance(system, list):
        total = 0
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _bad(f"system.{i}.type: Input should be 'text'")
            total += len(str(block.get("text", "")))
        return total
    raise _bad("system: Input should be a valid string")


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content
                         if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _messages(messages: Any, prompt: Prompt) -> bool:
    """Check the conversation; returns whether it holds tool_use/tool_result blocks."""
    if messages is None:
        raise _bad("messages: Field required")
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    if not messages:
        raise _bad("messages: at least one message is required")
    has_tools = False
    previous_tool_uses: dict[str, str] = {}
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _bad(f"messages.{i}: Input should be a valid dictionary")
        role = msg.get("role")
        if role == "system":
            raise _bad('messages: Unexpected role "system". The Messages API accepts a '
                       'top-level `system` parameter, not "system" as an input message role.')
        if role not in ("user", "assistant"):
            raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise _bad('messages: first message must use the "user" role')
        if i > 0 and messages[i - 1].get("role") == role:
            raise _bad('messages: roles must alternate between "user" and "assistant", but '
                       f'found multiple "{role}" roles in a row')
        content = msg.get("content")
        if content is None:
            raise _bad(f"messages.{i}.content: Field required")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise _bad(f"messages.{i}.content: Input should be a valid list")
        texts: list[str] = []
        uses: dict[str, str] = {}
        results: list[str] = []
        answered: set[str] = set()
        for j, block in enumerate(blocks):
            where = f"messages.{i}.content.{j}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in BLOCK_TYPES:
                raise _bad(f"{where}: Input tag '{kind}' found using 'type' does not match any "
                           "of the expected tags: " + ", ".join(f"'{t}'" for t in BLOCK_TYPES))
            if kind == "text":
                text = block.get("text")
                if not isinstance(text, str) or (not text and isinstance(content, list)):
                    raise _bad("messages: text content blocks must be non-empty")
                if not text and isinstance(content, str) and i < len(messages) - 1:
                    raise _bad(f"messages.{i}: all messages must have non-empty content except "
                               "for the optional final assistant message")
                texts.append(text)
            elif kind in ("image", "document"):
                _check_source(block, where, kind)
                prompt.media[kind] = prompt.media.get(kind, 0) + 1
            elif kind == "tool_use":
                has_tools = True
                if role != "assistant":
                    raise _bad(f"{where}: tool_use blocks may only appear in assistant messages")
                if not block.get("id") or not block.get("name") or not isinstance(
                        block.get("input"), dict):
                    raise _bad(f"{where}.tool_use.input: Field required")
                uses[block["id"]] = block["name"]
                prompt.input_chars += len(str(block["input"])) + len(block["name"])
            elif kind == "tool_result":
                has_tools = True
                tool_id = block.get("tool_use_id")
                if tool_id not in previous_tool_uses:
                    raise _bad(f"{where}: unexpected `tool_use_id` found in `tool_result` "
                               f"blocks: {tool_id}. Each `tool_result` block must have a "
                               "corresponding `tool_use` block in the previous message.")
                answered.add(tool_id)
                result = _result_text(block.get("content"))
                results.append(result)
                prompt.tool_result_name = previous_tool_uses[tool_id]
                prompt.input_chars += len(result)
        missing = [t for t in previous_tool_uses if t not in answered]
        if missing:
            raise _bad(f"messages.{i - 1}: `tool_use` ids were found without `tool_result` "
                       f"blocks immediately after: {', '.join(missing)}. Each `tool_use` block "
                       "must have a corresponding `tool_result` block in the next message.")
        if role == "assistant" and i == len(messages) - 1 and texts and texts[-1] != texts[-1].rstrip():
            raise _bad("messages: final assistant content cannot end with trailing whitespace")
        previous_tool_uses = uses
        prompt.end_turn(role, texts, results)
    return has_tools


def parse_messages(body: Any, *, bedrock: bool = False) -> tuple[Prompt, bool]:
    """Check a Messages API body; returns the prompt and whether to stream."""
    if not isinstance(body, dict):
        raise _bad("Input should be a valid dictionary")
    allowed = MESSAGE_PARAMS | ({"anthropic_version", "anthropic_beta"} if bedrock else set())
    for key in body:
        if key not in allowed or (bedrock and key in ("model", "stream")):
            raise _bad(f"{key}: Extra inputs are not permitted")
    model = body.get("model", "")
    if not bedrock and not model:
        raise _bad("model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _bad("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _bad("max_tokens: Input should be greater than or equal to 1")
    prompt = Prompt(model=model or "", max_tokens=max_tokens)
    prompt.input_chars += _system_chars(body.get("system"))
    _tools(body, prompt)
    has_tool_blocks = _messages(body.get("messages"), prompt)
    if has_tool_blocks and not body.get("tools"):
        raise _bad("Requests which include `tool_use` or `tool_result` blocks must define tools.")
    if body.get("tools"):
        prompt.input_chars += len(str(body["tools"]))
    return prompt, bool(body.get("stream"))


# ------------------------------------------------------------------ rendering


def usage(plan: Plan) -> dict[str, Any]:
    return {
        "input_tokens": plan.input_tokens - plan.cached_tokens - plan.cache_write_tokens,
        "cache_creation_input_tokens": plan.cache_write_tokens,
        "cache_read_input_tokens": plan.cached_tokens,
        "output_tokens": plan.output_tokens,
        "service_tier": "standard",
    }


def _tool_block(plan: Plan) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_01" + plan.short_id(22), "name": plan.tool_name,
            "input": plan.tool_args}


def render_message(plan: Plan, model: str, msg_id: str | None = None) -> dict[str, Any]:
    content = [_tool_block(plan)] if plan.kind == "tool" else [{"type": "text", "text": plan.text}]
    return {"id": msg_id or new_id("msg_01", 22), "type": "message", "role": "assistant",
            "model": model, "content": content, "stop_reason": STOP_REASONS[plan.finish],
            "stop_sequence": None, "usage": usage(plan)}


def stream_events(plan: Plan, model: str, msg_id: str | None = None) -> list[dict[str, Any]]:
    """The event objects of a streamed answer, in order."""
    start_usage = {**usage(plan), "output_tokens": 1}
    message = {"id": msg_id or new_id("msg_01", 22), "type": "message", "role": "assistant",
               "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": start_usage}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
    if plan.kind == "tool":
        block = {**_tool_block(plan), "input": {}}
        delta_of = lambda piece: {"type": "input_json_delta", "partial_json": piece}  # noqa: E731
    else:
        block = {"type": "text", "text": ""}
        delta_of = lambda piece: {"type": "text_delta", "text": piece}  # noqa: E731
    events.append({"type": "content_block_start", "index": 0, "content_block": block})
    events.append({"type": "ping"})
    for piece in plan.chunks():
        events.append({"type": "content_block_delta", "index": 0, "delta": delta_of(piece)})
    events.append({"type": "content_block_stop", "index": 0})
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": STOP_REASONS[plan.finish], "stop_sequence": None},
                   "usage": {k: v for k, v in usage(plan).items() if k != "service_tier"}})
    events.append({"type": "message_stop"})
    return events


def stream_error(knobs: Knobs) -> bytes:
    """The `error` event Anthropic sends when a stream fails after it started."""
    etype = knobs.error or "overloaded_error"
    message = "Overloaded" if etype == "overloaded_error" else "Internal server error"
    return sse({"type": "error", "error": {"type": etype, "message": message}}, "error")


async def _checked_body(request: web.Request) -> Any:
    """Key checked, then the JSON body; Anthropic's own 400 when it is not JSON."""
    check_auth(request)
    try:
        return await read_json(request)
    except ValueError:
        raise _bad("There was an error parsing the body of your request.") from None


async def messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages"""
    model = ""
    try:
        body = await _checked_body(request)
        model = body.get("model", "") if isinstance(body, dict) else ""
        prompt, stream = parse_messages(body)
        knobs, key, clean = resolve_knobs(request, prompt.last_user_text)
        await apply_knobs(request, knobs, key, stream=stream)
        plan = make_plan(prompt, knobs, clean)
        headers = {"request-id": new_id("req_011", 21)}
        if not stream:
            return json_response(render_message(plan, prompt.model), headers=headers)
        frames = [sse(e, e["type"]) for e in stream_events(plan, prompt.model)]
        return await stream_frames(request, frames, knobs, content_type="text/event-stream",
                                   headers=headers, error_frame=stream_error)
    except SimError as err:
        return anthropic_error(err, model)


async def count_tokens(request: web.Request) -> web.Response:
    """POST /v1/messages/count_tokens"""
    try:
        body = await _checked_body(request)
        if isinstance(body, dict):
            body = {**body, "max_tokens": body.get("max_tokens", 1)}
        prompt, _ = parse_messages(body)
        plan = make_plan(prompt, resolve_knobs(request, "")[0], "")
        return json_response({"input_tokens": plan.input_tokens})
    except SimError as err:
        return anthropic_error(err)


ROUTES = [
    ("POST", "/v1/messages", messages),
    ("POST", "/v1/messages/count_tokens", count_tokens),
]
