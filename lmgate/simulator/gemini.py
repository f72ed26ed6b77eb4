"""Gemini API on AI Studio: `/v1beta/models/{model}:generateContent` and friends.

The request is checked as Google's proto-JSON front end checks it (unknown fields are refused,
roles and bytes are checked); Vertex AI reuses `parse_generate`, `render_response`,
`stream_body` and `google_error`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from aiohttp import web

from lmgate.simulator.answer import Plan, Prompt, embedding_vector, make_plan
from lmgate.simulator.common import (
    CONTEXT_TOO_LONG, SimError, apply_knobs, json_response, key_rejected, new_id, read_json,
    resolve_knobs, stream_frames,
)
from lmgate.simulator.knobs import Knobs

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
           499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE",
           504: "DEADLINE_EXCEEDED"}
_MESSAGES = {
    404: "models/{model} is not found for API version v1beta, or is not supported for "
         "generateContent. Call ListModels to see the list of available models and their "
         "supported methods.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
         "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_TOP = {"contents", "tools", "toolConfig", "safetySettings", "systemInstruction",
        "generationConfig", "cachedContent", "model", "labels", "serviceTier"}
_GEN_CONFIG = {
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
    "_responseJsonSchema", "responseModalities", "candidateCount", "maxOutputTokens",
    "temperature", "topP", "topK", "seed", "presencePenalty", "frequencyPenalty",
    "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
    "thinkingConfig", "imageConfig", "mediaResolution", "audioTimestamp", "routingConfig",
    "modelSelectionConfig", "enableAffectiveDialog"}
_PART = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
         "codeExecutionResult", "thought", "thoughtSignature", "videoMetadata", "partMetadata",
         "mediaResolution", "toolCall", "toolResponse"}
_DECL = {"name", "description", "parameters", "parametersJsonSchema", "response",
         "responseJsonSchema", "behavior"}
FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
EMBED_DIMS = {"gemini-embedding-001": 3072, "text-embedding-004": 768, "embedding-001": 768,
              "text-embedding-005": 768, "text-multilingual-embedding-002": 768}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _bad(message: str) -> SimError:
    return SimError(400, message)


def _fields(obj: Any, allowed: set[str], where: str | None) -> dict[str, Any]:
    """Refuse unknown fields as Google does; accept snake_case spellings of known ones."""
    if not isinstance(obj, dict):
        at = f" at '{where}'" if where else ""
        raise _bad(f"Invalid JSON payload received. Expected an object{at}.")
    out = {}
    for key, value in obj.items():
        name = _camel(key)
        if name not in allowed:
            at = f" at '{_snake(where)}'" if where else ""
            raise _bad(f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find '
                       "field.")
        out[name] = value
    return out


def google_error(err: SimError, model: str = "") -> web.Response:
    if err.etype == CONTEXT_TOO_LONG and not err.message:
        err = SimError(err.status, "The input token count (1200000) exceeds the maximum number of "
                       "tokens allowed (1048576).")
    status = _STATUS.get(err.status, "UNKNOWN")
    message = err.message or _MESSAGES.get(err.status, status.replace("_", " ").capitalize() + ".")
    body: dict[str, Any] = {"error": {"code": err.status, "message": message.format(model=model),
                                      "status": err.etype or status}}
    details = []
    if err.code == "API_KEY_INVALID":
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"}})
    if err.status == 429 and err.retry_after is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{int(err.retry_after)}s"})
    if details:
        body["error"]["details"] = details
    return json_response(body, status=err.status)


def _decode(data: Any, where: str) -> bytes:
    text = str(data or "")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise _bad(f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for "
                       f'"{text[:20]}"') from None


def _parts(content: Any, where: str, prompt: Prompt) -> tuple[str, list[tuple[str, str]]]:
    """Text of a Content and its function responses (name, response JSON)."""
    content = _fields(content, {"role", "parts"}, where)
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _bad(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.\n")
    texts, responses = [], []
    for k, raw in enumerate(parts):
        part_where = f"{where}.parts[{k}]"
        part = _fields(raw, _PART, part_where)
        if "text" in part:
            texts.append(str(part["text"]))
        if "inlineData" in part:
            blob = _fields(part["inlineData"], {"mimeType", "data", "displayName"},
                           f"{part_where}.inline_data")
            if not blob.get("mimeType"):
                raise _bad(f"* GenerateContentRequest.{part_where}.inline_data.mime_type: "
                           "mime_type must be specified.\n")
            _decode(blob.get("data"), f"{part_where}.inline_data.data")
            kind = str(blob["mimeType"]).split("/")[0]
            kind = {"application": "document", "text": "document"}.get(kind, kind)
            prompt.media[kind] = prompt.media.get(kind, 0) + 1
        if "fileData" in part:
            prompt.media["file"] = prompt.media.get("file", 0) + 1
        if "functionCall" in part:
            call = part["functionCall"] or {}
            prompt.input_chars += len(orjson.dumps(call))
        if "functionResponse" in part:
            resp = part["functionResponse"] or {}
            if not isinstance(resp, dict) or not resp.get("name"):
                raise _bad(f"* GenerateContentRequest.{part_where}.function_response.name: "
                           "Name cannot be empty.\n")
            text = orjson.dumps(resp.get("response", {})).decode()
            responses.append((resp["name"], text))
            prompt.input_chars += len(text)
    return "\n".join(texts), responses


def parse_generate(body: Any, model: str) -> Prompt:
    """Check a GenerateContentRequest and extract the prompt."""
    body = _fields(body, _TOP, None)
    prompt = Prompt(model=model)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _bad("* GenerateContentRequest.contents: contents is not specified\n")
    last_role = ""
    for i, content in enumerate(contents):
        role = content.get("role", "user") if isinstance(content, dict) else "user"
        if role not in ("user", "model", "function", ""):
            raise _bad("Please use a valid role: user, model.")
        text, responses = _parts(content, f"contents[{i}]", prompt)
        prompt.input_chars += len(text)
        if role in ("user", "", "function"):
            if text or not responses:
                prompt.last_user_text = text
            prompt.tool_result = "\n".join(r for _, r in responses) if responses else None
            prompt.tool_result_name = responses[-1][0] if responses else None
        last_role = role
    if last_role == "model":
        prompt.tool_result = None
    if body.get("systemInstruction") is not None:
        text, _ = _parts(body["systemInstruction"], "system_instruction", prompt)
        prompt.input_chars += len(text)
    config = _fields(body.get("generationConfig") or {}, _GEN_CONFIG, "generation_config")
    max_out = config.get("maxOutputTokens")
    if max_out is not None:
        if isinstance(max_out, bool) or not isinstance(max_out, int) or max_out < 1:
            raise _bad("* GenerateContentRequest.generation_config.max_output_tokens: "
                       "max_output_tokens must be positive.\n")
        prompt.max_tokens = max_out
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        prompt.json_schema = schema if isinstance(schema, dict) else None
        prompt.json_mode = True
    for i, tool in enumerate(body.get("tools") or []):
        tool = _fields(tool, {"functionDeclarations", "googleSearch", "googleSearchRetrieval",
                              "codeExecution", "urlContext", "retrieval", "googleMaps",
                              "computerUse", "fileSearch", "enterpriseWebSearch"},
                       f"tools[{i}]")
        for j, decl in enumerate(tool.get("functionDeclarations") or []):
            decl = _fields(decl, _DECL, f"tools[{i}].function_declarations[{j}]")
            if not decl.get("name"):
                raise _bad(f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name:"
                           " Name cannot be empty.\n")
            schema = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
            prompt.tools.append((decl["name"], schema))
        prompt.input_chars += len(orjson.dumps(tool))
    return prompt


# ------------------------------------------------------------------ rendering


def _usage(plan: Plan, final: bool, vertex: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": plan.input_tokens}
    if final:
        usage["candidatesTokenCount"] = plan.output_tokens
        usage["totalTokenCount"] = plan.input_tokens + plan.output_tokens
    else:
        usage["totalTokenCount"] = plan.input_tokens
    if plan.cached_tokens:
        usage["cachedContentTokenCount"] = plan.cached_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.input_tokens}]
    if vertex:
        usage["trafficType"] = "ON_DEMAND"
    return usage


def _candidate(parts: list[dict[str, Any]] | None, finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {}
    if parts is not None:
        cand["content"] = {"parts": parts, "role": "model"}
    if finish:
        cand["finishReason"] = finish
        if finish == "SAFETY":
            cand["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                      "probability": "HIGH", "blocked": True}]
    cand["index"] = 0
    return cand


def _envelope(cand: dict[str, Any], usage: dict[str, Any], model: str, rid: str,
              vertex: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"candidates": [cand], "usageMetadata": usage, "modelVersion": model,
                           "responseId": rid}
    if vertex:
        out["createTime"] = "2025-01-01T00:00:00.000000Z"
    return out


def render_response(plan: Plan, model: str, vertex: bool) -> dict[str, Any]:
    finish = FINISH[plan.finish]
    if plan.kind == "tool":
        parts: list[dict[str, Any]] | None = [
            {"functionCall": {"name": plan.tool_name, "args": plan.tool_args}}]
    elif finish == "SAFETY":
        parts = None
    else:
        parts = [{"text": plan.text}]
    return _envelope(_candidate(parts, finish), _usage(plan, True, vertex), model,
                     new_id("", 22), vertex)


def stream_objects(plan: Plan, model: str, vertex: bool) -> list[dict[str, Any]]:
    """The GenerateContentResponse objects of a streamed answer, in order."""
    rid = new_id("", 22)
    finish = FINISH[plan.finish]
    if plan.kind == "tool":
        parts = [{"functionCall": {"name": plan.tool_name, "args": plan.tool_args}}]
        return [_envelope(_candidate(parts, finish), _usage(plan, True, vertex), model, rid,
                          vertex)]
    pieces = plan.chunks() or [""]
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        cand = _candidate([{"text": piece}], finish if last else None)
        out.append(_envelope(cand, _usage(plan, last, vertex), model, rid, vertex))
    return out


def stream_body(objects: list[dict[str, Any]], sse_mode: bool) -> list[bytes]:
    """SSE frames (`?alt=sse`) or the pieces of one streamed JSON array."""
    if sse_mode:
        return [b"data: " + orjson.dumps(o) + b"\r\n\r\n" for o in objects]
    frames = []
    for i, obj in enumerate(objects):
        frames.append((b"[" if i == 0 else b"\n,\r\n") + orjson.dumps(obj, option=orjson.OPT_INDENT_2))
    frames.append(b"\n]")
    return frames


async def generate(request: web.Request, body: Any, model: str, *, stream: bool,
                   vertex: bool) -> web.StreamResponse:
    """Shared by AI Studio and Vertex once auth passed."""
    prompt = parse_generate(body, model)
    knobs, key, clean = resolve_knobs(request, prompt.last_user_text)
    await apply_knobs(request, knobs, key, stream=stream)
    plan = make_plan(prompt, knobs, clean)
    if not stream:
        return json_response(render_response(plan, model, vertex))
    sse_mode = request.query.get("alt") == "sse"
    frames = stream_body(stream_objects(plan, model, vertex), sse_mode)
    def error_frame(knobs: Knobs) -> bytes:
        error = {"error": {"code": 500, "message": _MESSAGES[500], "status": knobs.error or "INTERNAL"}}
        if sse_mode:
            return b"data: " + orjson.dumps(error) + b"\r\n\r\n"
        return b"\n,\r\n" + orjson.dumps(error, option=orjson.OPT_INDENT_2) + b"\n]"

    return await stream_frames(request, frames, knobs, error_frame=error_frame,
                               content_type="text/event-stream" if sse_mode else "application/json")


# ------------------------------------------------------------------ AI Studio routes


def check_key(request: web.Request) -> None:
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        raise SimError(403, "Method doesn't allow unregistered callers (callers without "
                       "established identity). Please use API Key or other form of API consumer "
                       "identity to call this API.")
    if key_rejected(key):
        raise SimError(400, "API key not valid. Please pass a valid API key.",
                       code="API_KEY_INVALID")


def _embed_text(content: Any, where: str) -> str:
    prompt = Prompt(model="")
    text, _ = _parts(content, where, prompt)
    return text


def _embed_dims(model: str, requested: Any) -> int:
    full = EMBED_DIMS.get(model, 768)
    if requested is None:
        return full
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise _bad("* EmbedContentRequest.output_dimensionality: must be positive.\n")
    return min(requested, full)


async def embed_answer(request: web.Request, body: Any, model: str, batch: bool) -> web.Response:
    """embedContent and batchEmbedContents (Vertex serves them too)."""
    allowed = {"model", "content", "taskType", "title", "outputDimensionality"}
    if batch:
        body = _fields(body, {"requests"}, None)
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _bad("* BatchEmbedContentsRequest.requests: requests must not be empty.\n")
    else:
        requests = [body]
    texts, dims = [], []
    for i, req in enumerate(requests):
        req = _fields(req, allowed, f"requests[{i}]" if batch else None)
        if batch and req.get("model") not in (f"models/{model}", model, None):
            raise _bad(f"Model {req.get('model')} in request {i} does not match the model "
                       f"models/{model} in the URL.")
        if "content" not in req:
            raise _bad("* EmbedContentRequest.content: content is not specified\n")
        texts.append(_embed_text(req["content"], f"requests[{i}].content" if batch else "content"))
        dims.append(_embed_dims(model, req.get("outputDimensionality")))
    knobs, key, _ = resolve_knobs(request, "\n".join(t for t in texts if "[[sim:" in t))
    await apply_knobs(request, knobs, key, stream=False)
    vectors = [{"values": embedding_vector(t, d)} for t, d in zip(texts, dims)]
    if batch:
        return json_response({"embeddings": vectors})
    return json_response({"embedding": vectors[0]})


def count_tokens_answer(body: Any, model: str) -> web.Response:
    """countTokens: the prompt's token count, as generateContent would report it."""
    body = body if isinstance(body, dict) else {}
    contents = body.get("contents") or (body.get("generateContentRequest") or {}).get("contents")
    plan = make_plan(parse_generate({"contents": contents}, model), Knobs(), "")
    return json_response({"totalTokens": plan.input_tokens, "promptTokensDetails": [
        {"modality": "TEXT", "tokenCount": plan.input_tokens}]})


async def models_action(request: web.Request) -> web.StreamResponse:
    """POST /v1beta/models/{model}:{action} (and the v1, v1alpha versions)"""
    target = request.match_info["target"]
    model, _, action = target.rpartition(":")
    try:
        check_key(request)
        try:
            body = await read_json(request)
        except ValueError as exc:
            raise _bad(f"Invalid JSON payload received. {exc}") from None
        if action in ("generateContent", "streamGenerateContent"):
            return await generate(request, body, model, stream=action != "generateContent",
                                  vertex=False)
        if action == "countTokens":
            return count_tokens_answer(body, model)
        if action in ("embedContent", "batchEmbedContents"):
            return await embed_answer(request, body, model, action == "batchEmbedContents")
        raise SimError(404, f"Method {action} not found for models/{model}.")
    except SimError as err:
        return google_error(err, model)


ROUTES = [
    ("POST", "/v1beta/models/{target}", models_action),
    ("POST", "/v1/models/{target}", models_action),
    ("POST", "/v1alpha/models/{target}", models_action),
]
