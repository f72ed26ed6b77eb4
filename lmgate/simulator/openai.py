"""OpenAI (and vLLM-compatible) chat completions, checked and answered as OpenAI does.

The Azure module reuses these handlers with `azure=True`, which adds Azure's content-filter
fields and its choice-less first stream chunk.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from lmgate.simulator.answer import Plan, Prompt, make_plan
from lmgate.simulator.common import (
    SimError, apply_knobs, json_response, new_id, now, prefix_knobs, resolve_knobs,
    sse, stream_frames,
)
from lmgate.simulator.knobs import Knobs
from lmgate.simulator.openai_errors import openai_body, openai_error, vllm_error

CHAT_PARAMS = frozenset(
    """model messages stream stream_options temperature top_p n stop max_tokens
    max_completion_tokens presence_penalty frequency_penalty logit_bias logprobs top_logprobs
    user tools tool_choice parallel_tool_calls response_format seed service_tier store metadata
    modalities audio prediction reasoning_effort functions function_call web_search_options
    safety_identifier prompt_cache_key prompt_cache_retention verbosity data_sources
    top_k min_p repetition_penalty min_tokens best_of use_beam_search length_penalty
    stop_token_ids include_stop_str_in_output ignore_eos skip_special_tokens
    spaces_between_special_tokens truncate_prompt_tokens echo add_generation_prompt
    continue_final_message add_special_tokens documents chat_template chat_template_kwargs
    mm_processor_kwargs guided_json guided_regex guided_choice guided_grammar
    guided_decoding_backend guided_whitespace_pattern structured_outputs priority request_id
    return_tokens_as_token_ids""".split()
)  # OpenAI's parameters plus vLLM's extra sampling parameters
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp")
_PART_KEYS = {
    "text": {"type", "text", "cache_control"},
    "image_url": {"type", "image_url"},
    "input_audio": {"type", "input_audio"},
    "file": {"type", "file"},
    "refusal": {"type", "refusal"},
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DATA_URI = re.compile(r"^data:([^;,]+)?((?:;[^;,]+)*);base64,(.*)$", re.S)
SAFE_FILTER = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": {
    **SAFE_FILTER, "jailbreak": {"filtered": False, "detected": False}}}]
BLOCKED_FILTER = {**SAFE_FILTER, "violence": {"filtered": True, "severity": "high"}}


@dataclass(slots=True)
class ChatRequest:
    prompt: Prompt
    stream: bool
    include_usage: bool
    n: int


def _bad(message: str, param: str | None = None, code: str | None = None) -> SimError:
    return SimError(400, message, param=param, code=code, etype="invalid_request_error")


def _unknown(param: str) -> SimError:
    return _bad(f"Unknown parameter: '{param}'.", param, "unknown_parameter")


def decode_data_uri(uri: str, param: str, kinds: tuple[str, ...] | None) -> tuple[str, bytes]:
    """Decode a base64 data URI the way OpenAI checks it."""
    match = _DATA_URI.match(uri)
    if not match:
        raise _bad(
            f"Invalid '{param}'. Expected a base64-encoded data URL with an image MIME type "
            "(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got an invalid value.",
            param, "invalid_value",
        )
    media_type = (match.group(1) or "").lower()
    try:
        data = base64.b64decode(match.group(3), validate=True)
    except (binascii.Error, ValueError):
        raise _bad("Invalid base64 data in '" + param + "'.", param, "invalid_base64") from None
    if kinds is not None and media_type not in kinds:
        raise _bad(
            "You uploaded an unsupported image. Please make sure your image has of one the "
            "following formats: ['png', 'jpeg', 'gif', 'webp'].", param, "invalid_image_format",
        )
    return media_type, data


def _text_of(content: Any, param: str, allowed: tuple[str, ...]) -> str:
    """Text of a content value that may only hold text-like parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise _bad(f"Invalid type for '{param}': expected one of a string or array of objects, "
                   "but got an object instead.", param, "invalid_type")
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in allowed:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise _bad(f"Invalid value: '{kind}'. Supported values are: "
                       + ", ".join(f"'{a}'" for a in allowed) + ".",
                       f"{param}[{j}].type", "invalid_value")
        texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "\n".join(texts)


def _user_parts(content: Any, param: str, prompt: Prompt) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"Invalid type for '{param}': expected one of a string or array of objects, "
                   "but got an object instead.", param, "invalid_type")
    texts = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in _PART_KEYS or kind == "refusal":
            raise _bad(f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
                       "'input_audio', and 'file'.", f"{where}.type", "invalid_value")
        for key in part:
            if key not in _PART_KEYS[kind]:
                raise _unknown(f"{where}.{key}")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _bad(f"Missing required parameter: '{where}.text'.", f"{where}.text",
                           "missing_required_parameter")
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str):
                raise _bad(f"Missing required parameter: '{where}.image_url.url'.",
                           f"{where}.image_url.url", "missing_required_parameter")
            for key in image:
                if key not in ("url", "detail"):
                    raise _unknown(f"{where}.image_url.{key}")
            if url.startswith("data:"):
                decode_data_uri(url, f"{where}.image_url.url", IMAGE_TYPES)
            elif not url.startswith(("http://", "https://")):
                raise _bad(f"Invalid '{where}.image_url.url'. Expected a valid URL, but got a "
                           "value with an invalid format.", f"{where}.image_url.url",
                           "invalid_value")
            prompt.media["image"] = prompt.media.get("image", 0) + 1
        elif kind == "file":
            _check_file(part.get("file"), f"{where}.file")
            prompt.media["document"] = prompt.media.get("document", 0) + 1
        elif kind == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict) or "data" not in audio or "format" not in audio:
                raise _bad(f"Missing required parameter: '{where}.input_audio.data'.",
                           f"{where}.input_audio", "missing_required_parameter")
            prompt.media["audio"] = prompt.media.get("audio", 0) + 1
    return "\n".join(texts)


def _check_file(file: Any, where: str) -> None:
    if not isinstance(file, dict):
        raise _bad(f"Missing required parameter: '{where}'.", where, "missing_required_parameter")
    for key in file:
        if key not in ("file_data", "file_id", "filename"):
            raise _unknown(f"{where}.{key}")
    if "file_data" in file:
        if not file.get("filename"):
            raise _bad(f"Missing required parameter: '{where}.filename'.", f"{where}.filename",
                       "missing_required_parameter")
        decode_data_uri(str(file["file_data"]), f"{where}.file_data", None)
    elif "file_id" not in file:
        raise _bad(f"Missing required parameter: '{where}.file_data'.", f"{where}.file_data",
                   "missing_required_parameter")


def _number(body: dict, key: str, lo: float, hi: float | None, integer: bool = False) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        kind = "an integer" if integer else "a number"
        raise _bad(f"Invalid type for '{key}': expected {kind}, but got "
                   f"{type(value).__name__} instead.", key, "invalid_type")
    if value < lo:
        raise _bad(f"Invalid '{key}': {'integer' if integer else 'decimal'} below minimum value. "
                   f"Expected a value >= {lo:g}, but got {value} instead.", key,
                   "integer_below_min_value" if integer else "decimal_below_min_value")
    if hi is not None and value > hi:
        raise _bad(f"Invalid '{key}': {'integer' if integer else 'decimal'} above maximum value. "
                   f"Expected a value <= {hi:g}, but got {value} instead.", key,
                   "integer_above_max_value" if integer else "decimal_above_max_value")


def _tools(body: dict, prompt: Prompt) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _bad("Invalid type for 'tools': expected an array, but got an object instead.",
                   "tools", "invalid_type")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
            raise _bad(f"Missing required parameter: 'tools[{i}].type'.", f"tools[{i}].type",
                       "missing_required_parameter")
        fn = tool.get(tool["type"]) or {}
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _bad(f"Invalid 'tools[{i}].function.name': string does not match pattern. "
                       "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                       f"tools[{i}].function.name", "invalid_value")
        prompt.tools.append((name, fn.get("parameters") or {}))


def _messages(messages: Any, prompt: Prompt) -> None:
    if not isinstance(messages, list):
        raise _bad("Missing required parameter: 'messages'.", "messages",
                   "missing_required_parameter")
    if not messages:
        raise _bad("Invalid 'messages': empty array. Expected an array with minimum length 1, "
                   "but got an empty array instead.", "messages", "empty_array")
    pending: dict[str, str] = {}  # tool_call_id -> name, awaiting a tool message
    names: dict[str, str] = {}
    chars = 0
    trailing_results: list[str] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ROLES:
            raise _bad(f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                       "'user', 'function', 'tool', and 'developer'.", f"{where}.role",
                       "invalid_value")
        if pending and role != "tool":
            raise _bad("An assistant message with 'tool_calls' must be followed by tool messages "
                       "responding to each 'tool_call_id'. The following tool_call_ids did not "
                       "have response messages: " + ", ".join(pending), "messages", None)
        content = msg.get("content")
        if role in ("system", "developer"):
            text = _text_of(content, f"{where}.content", ("text",))
        elif role == "user":
            text = _user_parts(content, f"{where}.content", prompt)
            prompt.last_user_text = text
        elif role == "assistant":
            text = _text_of(content, f"{where}.content", ("text", "refusal"))
            for j, call in enumerate(msg.get("tool_calls") or []):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not call.get("id") or "name" not in fn:
                    raise _bad(f"Missing required parameter: '{where}.tool_calls[{j}].id'.",
                               f"{where}.tool_calls[{j}]", "missing_required_parameter")
                pending[call["id"]] = fn["name"]
                names[call["id"]] = fn["name"]
                chars += len(str(fn.get("arguments", ""))) + len(fn["name"])
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not call_id:
                raise _bad(f"Missing required parameter: '{where}.tool_call_id'.",
                           f"{where}.tool_call_id", "missing_required_parameter")
            if call_id not in pending:
                raise _bad("Invalid parameter: messages with role 'tool' must be a response to "
                           "a preceeding message with 'tool_calls'.", f"{where}.role", None)
            pending.pop(call_id)
            text = _text_of(content, f"{where}.content", ("text",))
        else:
            text = _text_of(content, f"{where}.content", ("text",))
        chars += len(text)
        if role == "tool":
            trailing_results.append(text)
            prompt.tool_result_name = names.get(msg["tool_call_id"], msg["tool_call_id"])
        else:
            trailing_results = []
    if pending:
        raise _bad("An assistant message with 'tool_calls' must be followed by tool messages "
                   "responding to each 'tool_call_id'. The following tool_call_ids did not "
                   "have response messages: " + ", ".join(pending), "messages", None)
    if trailing_results:
        prompt.tool_result = "\n".join(trailing_results)
    prompt.input_chars += chars


def _check_alternation(messages: list[dict[str, Any]]) -> None:
    """Gemma's chat template (as vLLM serves it) refuses turns that do not alternate."""
    roles = [m.get("role") for m in messages]
    if roles and roles[0] in ("system", "developer"):
        roles = roles[1:]
    for i, role in enumerate(roles):
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise _bad("Conversation roles must alternate user/assistant/user/assistant/...",
                       None, None)


def parse_chat(body: Any, model_override: str | None = None, *, vllm: bool = False
               ) -> ChatRequest:
    """Check a chat completions body as OpenAI would (or vLLM, more leniently) and extract the
    prompt."""
    if not isinstance(body, dict):
        raise _bad("We could not parse the JSON body of your request. (HINT: This likely means "
                   "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                   "payload, but what was sent was not valid JSON.)")
    for key in body:
        if key not in CHAT_PARAMS and not vllm:
            raise _bad(f"Unrecognized request argument supplied: {key}", key, "unknown_parameter")
    model = model_override or body.get("model")
    if not model or not isinstance(model, str):
        raise _bad("you must provide a model parameter")
    prompt = Prompt(model=model)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "n", 1, 128, integer=True)
    _number(body, "max_tokens", 1, None, integer=True)
    _number(body, "max_completion_tokens", 1, None, integer=True)
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise _bad("Invalid type for 'stream': expected a boolean, but got "
                   f"{type(stream).__name__} instead.", "stream", "invalid_type")
    options = body.get("stream_options")
    if options is not None and not stream:
        raise _bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                   "stream_options", None)
    _tools(body, prompt)
    _messages(body.get("messages"), prompt)
    if "gemma" in model.lower():
        _check_alternation(body["messages"])
    prompt.input_chars += len(orjson.dumps(body["tools"])) if body.get("tools") else 0
    prompt.max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_schema":
            prompt.json_schema = (fmt.get("json_schema") or {}).get("schema") or {}
        elif fmt.get("type") == "json_object":
            prompt.json_mode = True
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    return ChatRequest(prompt, stream, include_usage, int(body.get("n") or 1))


# ------------------------------------------------------------------ rendering


def _usage(plan: Plan, n: int) -> dict[str, Any]:
    out = plan.output_tokens * n
    return {
        "prompt_tokens": plan.input_tokens,
        "completion_tokens": out,
        "total_tokens": plan.input_tokens + out,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


def _tool_call(plan: Plan) -> dict[str, Any]:
    return {"id": "call_" + plan.short_id(24), "type": "function",
            "function": {"name": plan.tool_name, "arguments": plan.tool_args_json}}


def render_completion(plan: Plan, req: ChatRequest, model: str, azure: bool) -> dict[str, Any]:
    if plan.kind == "tool":
        message = {"role": "assistant", "content": None, "tool_calls": [_tool_call(plan)],
                   "refusal": None, "annotations": []}
    else:
        message = {"role": "assistant", "content": plan.text, "refusal": None, "annotations": []}
    choices = []
    for i in range(req.n):
        choice: dict[str, Any] = {"index": i, "message": message, "logprobs": None,
                                  "finish_reason": plan.finish}
        if azure:
            choice["content_filter_results"] = (
                BLOCKED_FILTER if plan.finish == "content_filter" else SAFE_FILTER)
        choices.append(choice)
    out: dict[str, Any] = {
        "id": new_id("chatcmpl-", 29), "object": "chat.completion", "created": now(),
        "model": model, "choices": choices, "usage": _usage(plan, req.n),
        "system_fingerprint": "fp_simulator",
    }
    if azure:
        out["prompt_filter_results"] = PROMPT_FILTER
    else:
        out["service_tier"] = "default"
    return out


def stream_chunks(plan: Plan, req: ChatRequest, model: str, azure: bool) -> list[bytes]:
    """Every SSE frame of a streamed answer, `data: [DONE]` included."""
    cid, created = new_id("chatcmpl-", 29), now()
    frames = []
    if azure:
        frames.append(sse({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                           "prompt_filter_results": PROMPT_FILTER}))

    def chunk(delta: dict[str, Any], finish: str | None, index: int) -> bytes:
        choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None,
                                  "finish_reason": finish}
        if azure:
            choice["content_filter_results"] = (
                {} if finish is None and not delta.get("content") else
                BLOCKED_FILTER if finish == "content_filter" else SAFE_FILTER)
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                               "model": model, "system_fingerprint": "fp_simulator",
                               "choices": [choice]}
        if req.include_usage:
            obj["usage"] = None
        return sse(obj)

    for i in range(req.n):
        if plan.kind == "tool":
            call = _tool_call(plan)
            first = {"index": 0, "id": call["id"], "type": "function",
                     "function": {"name": plan.tool_name, "arguments": ""}}
            frames.append(chunk({"role": "assistant", "content": None, "tool_calls": [first],
                                 "refusal": None}, None, i))
            for piece in plan.chunks():
                frames.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
                                    None, i))
        else:
            frames.append(chunk({"role": "assistant", "content": "", "refusal": None}, None, i))
            for piece in plan.chunks():
                frames.append(chunk({"content": piece}, None, i))
        frames.append(chunk({}, plan.finish, i))
    if req.include_usage:
        frames.append(sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": "fp_simulator", "choices": [],
                           "usage": _usage(plan, req.n)}))
    frames.append(b"data: [DONE]\n\n")
    return frames


def stream_error(knobs: Knobs) -> bytes:
    """The error event OpenAI sends when a stream fails after it started."""
    return sse({"error": {"message": "The server had an error while processing your request. "
                                     "Sorry about that!", "type": knobs.error or "server_error",
                          "param": None, "code": None}})


async def chat_answer(request: web.Request, body: Any, *, model: str | None, azure: bool,
                      vllm: bool = False) -> web.StreamResponse:
    """Shared by OpenAI and Azure once auth passed: validate, apply knobs, answer."""
    req = parse_chat(body, model, vllm=vllm)
    knobs, key, clean = resolve_knobs(request, req.prompt.last_user_text)
    await apply_knobs(request, knobs, key, stream=req.stream)
    plan = make_plan(req.prompt, knobs, clean)
    name = req.prompt.model
    headers = {"x-request-id": new_id("req_", 32)}
    if not req.stream:
        return json_response(render_completion(plan, req, name, azure), headers=headers)
    return await stream_frames(request, stream_chunks(plan, req, name, azure), knobs,
                               content_type="text/event-stream", headers=headers,
                               error_frame=stream_error)


async def chat(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions (a vLLM server's when the prefix says `flavor=vllm`)"""
    model = ""
    vllm = prefix_knobs(request).flavor == "vllm"
    try:
        body = await openai_body(request)
        model = body.get("model", "") if isinstance(body, dict) else ""
        return await chat_answer(request, body, model=None, azure=False, vllm=vllm)
    except SimError as err:
        return vllm_error(err, model) if vllm else openai_error(err, model)
