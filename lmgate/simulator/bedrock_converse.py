"""Bedrock Converse request checks and answer shapes (whole and ConverseStream events).

Field names, enums and required members follow the bedrock-runtime service model; the error
messages are the ones Bedrock returns for the same mistakes.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from lmgate.simulator.answer import Plan, Prompt
from lmgate.simulator.common import SimError

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
        "content_filter": "content_filtered"}
_BLOCKS = ("text", "image", "document", "video", "audio", "toolUse", "toolResult",
           "guardContent", "cachePoint", "reasoningContent", "citationsContent", "searchResult")
_DOC_NAME = re.compile(r"^[A-Za-z0-9\-\(\)\[\] ]+$")


def _bad(message: str) -> SimError:
    return SimError(400, message, etype="ValidationException")


def _b64(value: Any, where: str) -> int:
    try:
        return len(base64.b64decode(str(value or ""), validate=True))
    except (binascii.Error, ValueError):
        raise _bad(f"Invalid base64 data at {where}.") from None


def _media(block: dict[str, Any], kind: str, where: str, prompt: Prompt) -> None:
    media = block[kind]
    if not isinstance(media, dict) or "source" not in media:
        raise _bad(f"1 validation error detected: Value null at '{where}.{kind}.source' failed to "
                   "satisfy constraint: Member must not be null")
    if kind == "document":
        name = media.get("name")
        if not isinstance(name, str) or not _DOC_NAME.match(name) or "  " in name:
            raise _bad("The document file name can only contain alphanumeric characters, "
                       "whitespace characters, hyphens, parentheses, and square brackets. The "
                       "name can't contain more than one consecutive whitespace character.")
    source = media["source"]
    if isinstance(source, dict) and "bytes" in source:
        _b64(source["bytes"], f"{where}.{kind}.source.bytes")
    prompt.media[kind] = prompt.media.get(kind, 0) + 1


def parse_messages(messages: Any, prompt: Prompt) -> bool:
    """Check Converse messages (also Nova's invoke body); returns whether tool blocks appear."""
    if not isinstance(messages, list):
        raise _bad("1 validation error detected: Value null at 'messages' failed to satisfy "
                   "constraint: Member must not be null")
    if not messages or messages[0].get("role") != "user":
        raise _bad("A conversation must start with a user message. Try again with a "
                   "conversation that starts with a user message.")
    has_tools = False
    previous_uses: dict[str, str] = {}
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant"):
            raise _bad(f"1 validation error detected: Value '{role}' at 'messages.{i + 1}.member."
                       "role' failed to satisfy constraint: Member must satisfy enum value set: "
                       "[user, assistant]")
        if i and messages[i - 1].get("role") == role:
            raise _bad("A conversation must alternate between user and assistant roles. Make "
                       "sure the conversation alternates between user and assistant roles and "
                       "try again.")
        content = msg.get("content")
        if not isinstance(content, list) or not content:
            raise _bad(f"The content field in the Message object at messages.{i} is empty. Add a "
                       "ContentBlock object to the content field and try again.")
        texts, results, uses = [], [], {}
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            keys = [k for k in block if k in _BLOCKS] if isinstance(block, dict) else []
            if len(keys) != 1:
                raise _bad(f"The ContentBlock object at {where} must set exactly one of the "
                           "following keys: " + ", ".join(_BLOCKS) + ".")
            kind = keys[0]
            if kind == "text":
                if not str(block["text"]).strip():
                    raise _bad(f"The text field in the ContentBlock object at {where} is blank. "
                               "Add text to the text field, and try again.")
                texts.append(str(block["text"]))
            elif kind in ("image", "document", "video", "audio"):
                _media(block, kind, where, prompt)
            elif kind == "toolUse":
                has_tools = True
                use = block["toolUse"] or {}
                if not use.get("toolUseId") or not use.get("name") or "input" not in use:
                    raise _bad(f"1 validation error detected: Value null at '{where}.toolUse."
                               "toolUseId' failed to satisfy constraint: Member must not be null")
                uses[use["toolUseId"]] = use["name"]
                prompt.input_chars += len(str(use["input"])) + len(use["name"])
            elif kind == "toolResult":
                has_tools = True
                result = block["toolResult"] or {}
                if result.get("toolUseId") not in previous_uses:
                    raise _bad(f"The number of toolResult blocks at messages.{i}.content exceeds "
                               "the number of toolUse blocks of previous turn.")
                parts = []
                for item in result.get("content") or []:
                    if "text" in item:
                        parts.append(str(item["text"]))
                    elif "json" in item:
                        parts.append(orjson.dumps(item["json"]).decode())
                text = "\n".join(parts)
                results.append(text)
                prompt.tool_result_name = previous_uses[result["toolUseId"]]
                prompt.input_chars += len(text)
        previous_uses = uses
        prompt.end_turn(role, texts, results)
    return has_tools


def parse_converse(body: Any, model: str) -> Prompt:
    if not isinstance(body, dict):
        raise _bad("Malformed request body.")
    prompt = Prompt(model=model)
    for j, block in enumerate(body.get("system") or []):
        if isinstance(block, dict) and "text" in block:
            if not str(block["text"]).strip():
                raise _bad(f"The text field in the SystemContentBlock object at system.{j} is "
                           "blank. Add text to the text field, and try again.")
            prompt.input_chars += len(block["text"])
    config = body.get("inferenceConfig") or {}
    max_tokens = config.get("maxTokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _bad(f"1 validation error detected: Value '{max_tokens}' at 'inferenceConfig."
                       "maxTokens' failed to satisfy constraint: Member must have value greater "
                       "than or equal to 1")
        prompt.max_tokens = max_tokens
    tool_config = body.get("toolConfig")
    if tool_config is not None:
        tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
        if not isinstance(tools, list) or not tools:
            raise _bad("1 validation error detected: Value '[]' at 'toolConfig.tools' failed to "
                       "satisfy constraint: Member must have length greater than or equal to 1")
        for i, tool in enumerate(tools):
            spec = tool.get("toolSpec") if isinstance(tool, dict) else None
            if spec is None:
                continue
            if not spec.get("name") or not isinstance(spec.get("inputSchema"), dict):
                raise _bad(f"1 validation error detected: Value null at 'toolConfig.tools.{i + 1}"
                           ".member.toolSpec.inputSchema' failed to satisfy constraint: Member "
                           "must not be null")
            prompt.tools.append((spec["name"], spec["inputSchema"].get("json") or {}))
            prompt.input_chars += len(str(spec))
    has_tools = parse_messages(body.get("messages"), prompt)
    if has_tools and tool_config is None:
        raise _bad("The toolConfig field must be defined when using toolUse and toolResult "
                   "content blocks.")
    return prompt


# ------------------------------------------------------------------ rendering


def usage(plan: Plan) -> dict[str, Any]:
    fresh = plan.input_tokens - plan.cached_tokens - plan.cache_write_tokens
    out = {"inputTokens": fresh, "outputTokens": plan.output_tokens,
           "totalTokens": plan.input_tokens + plan.output_tokens}
    if plan.cached_tokens or plan.cache_write_tokens:
        out["cacheReadInputTokens"] = plan.cached_tokens
        out["cacheWriteInputTokens"] = plan.cache_write_tokens
    return out


def tool_use_id(plan: Plan) -> str:
    return "tooluse_" + plan.short_id(22)


def render_converse(plan: Plan) -> dict[str, Any]:
    if plan.kind == "tool":
        content = [{"toolUse": {"toolUseId": tool_use_id(plan), "name": plan.tool_name,
                                "input": plan.tool_args}}]
    else:
        content = [{"text": plan.text}]
    return {"output": {"message": {"role": "assistant", "content": content}},
            "stopReason": STOP[plan.finish], "usage": usage(plan),
            "metrics": {"latencyMs": 100 + plan.output_tokens}}


def _pad(n: int) -> str:
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"[: 1 + n % 50]


def converse_events(plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    """(event type, payload) pairs of a ConverseStream answer, in order."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    if plan.kind == "tool":
        events.append(("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {
            "toolUseId": tool_use_id(plan), "name": plan.tool_name}}}))
        for piece in plan.chunks():
            events.append(("contentBlockDelta", {"contentBlockIndex": 0,
                                                 "delta": {"toolUse": {"input": piece}}}))
    else:
        for piece in plan.chunks():
            events.append(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
    events.append(("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(("messageStop", {"stopReason": STOP[plan.finish]}))
    events.append(("metadata", {"usage": usage(plan),
                                "metrics": {"latencyMs": 100 + plan.output_tokens}}))
    for i, (_, payload) in enumerate(events):
        payload["p"] = _pad(i)
    return events
