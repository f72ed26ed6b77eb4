"""Read what the simulator received, whatever the protocol: (role, text) turns, the system
prompt, media blocks, tool definitions and tool results, so one assertion fits every provider."""

from __future__ import annotations

import base64
from typing import Any

ROLE = {"model": "assistant", "assistant": "assistant", "user": "user", "system": "system", "tool": "tool"}


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for block in content or []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            out.append(block["text"])
    return "".join(out)


def system_text(protocol: str, body: dict[str, Any]) -> str:
    if protocol == "openai":
        return "".join(_texts(m.get("content")) for m in body["messages"] if m["role"] in ("system", "developer"))
    if protocol == "anthropic":
        return _texts(body.get("system") or "")
    if protocol == "gemini":
        return _texts((body.get("systemInstruction") or {}).get("parts"))
    if protocol == "bedrock":
        return _texts(body.get("system"))
    raise AssertionError(protocol)


def turns(protocol: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The conversation without the system prompt: (user|assistant|tool, text)."""
    if protocol == "openai":
        return [(ROLE[m["role"]], _texts(m.get("content"))) for m in body["messages"] if m["role"] not in ("system", "developer")]
    key, parts = ("contents", "parts") if protocol == "gemini" else ("messages", "content")
    return [(ROLE[m["role"]], _texts(m.get(parts))) for m in body[key]]


def media_blocks(protocol: str, body: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(media type or format, decoded bytes) of every image/document block sent upstream."""
    found: list[tuple[str, bytes]] = []
    if protocol == "openai":
        for m in body["messages"]:
            for p in m["content"] if isinstance(m.get("content"), list) else []:
                url = (p.get("image_url") or {}).get("url") or (p.get("file") or {}).get("file_data")
                if url and url.startswith("data:"):
                    head, data = url.split(",", 1)
                    found.append((head[5:].split(";")[0], base64.b64decode(data)))
    elif protocol == "anthropic":
        for m in body["messages"]:
            for p in m["content"] if isinstance(m["content"], list) else []:
                src = p.get("source") or {}
                if p.get("type") in ("image", "document") and src.get("type") == "base64":
                    found.append((src["media_type"], base64.b64decode(src["data"])))
    elif protocol == "gemini":
        for m in body["contents"]:
            for p in m["parts"]:
                if "inlineData" in p:
                    found.append((p["inlineData"]["mimeType"], base64.b64decode(p["inlineData"]["data"])))
    elif protocol == "bedrock":
        for m in body["messages"]:
            for p in m["content"]:
                for kind in ("image", "document", "video"):
                    if kind in p:
                        found.append((p[kind]["format"], base64.b64decode(p[kind]["source"]["bytes"])))
    return found


def tool_names(protocol: str, body: dict[str, Any]) -> list[str]:
    if protocol == "openai":
        return [t["function"]["name"] for t in body.get("tools") or []]
    if protocol == "anthropic":
        return [t["name"] for t in body.get("tools") or []]
    if protocol == "gemini":
        return [d["name"] for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    if protocol == "bedrock":
        return [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools") or []]
    raise AssertionError(protocol)


def tool_call_and_result_ids(protocol: str, body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Ids of the assistant's tool calls and of the tool results in a follow-up request.

    Gemini ids are optional on the wire; an absent one is reported as the function name."""
    calls: list[str] = []
    results: list[str] = []
    if protocol == "openai":
        for m in body["messages"]:
            calls += [c["id"] for c in m.get("tool_calls") or []]
            if m["role"] == "tool":
                results.append(m["tool_call_id"])
    elif protocol == "anthropic":
        for m in body["messages"]:
            for p in m["content"] if isinstance(m["content"], list) else []:
                if p.get("type") == "tool_use":
                    calls.append(p["id"])
                if p.get("type") == "tool_result":
                    results.append(p["tool_use_id"])
    elif protocol == "gemini":
        for m in body["contents"]:
            for p in m["parts"]:
                if "functionCall" in p:
                    calls.append(p["functionCall"].get("id") or p["functionCall"]["name"])
                if "functionResponse" in p:
                    results.append(p["functionResponse"].get("id") or p["functionResponse"]["name"])
    elif protocol == "bedrock":
        for m in body["messages"]:
            for p in m["content"]:
                if "toolUse" in p:
                    calls.append(p["toolUse"]["toolUseId"])
                if "toolResult" in p:
                    results.append(p["toolResult"]["toolUseId"])
    return calls, results


def sampling(protocol: str, body: dict[str, Any]) -> dict[str, Any]:
    """temperature, top_p, max_tokens and stop as the upstream received them."""
    if protocol == "openai":
        return {"temperature": body.get("temperature"), "top_p": body.get("top_p"),
                "max_tokens": body.get("max_completion_tokens", body.get("max_tokens")), "stop": body.get("stop")}
    if protocol == "anthropic":
        return {"temperature": body.get("temperature"), "top_p": body.get("top_p"), "max_tokens": body.get("max_tokens"),
                "stop": body.get("stop_sequences")}
    if protocol == "gemini":
        g = body.get("generationConfig") or {}
        return {"temperature": g.get("temperature"), "top_p": g.get("topP"), "max_tokens": g.get("maxOutputTokens"), "stop": g.get("stopSequences")}
    if protocol == "bedrock":
        c = body.get("inferenceConfig") or {}
        return {"temperature": c.get("temperature"), "top_p": c.get("topP"), "max_tokens": c.get("maxTokens"), "stop": c.get("stopSequences")}
    raise AssertionError(protocol)


def forced_tool(protocol: str, body: dict[str, Any]) -> str | None:
    """The one tool the request forces the model to call, in each protocol's terms (None: not forced)."""
    if protocol == "openai":
        choice = body.get("tool_choice")
        return choice["function"]["name"] if isinstance(choice, dict) else None
    if protocol == "anthropic":
        choice = body.get("tool_choice") or {}
        return choice.get("name") if choice.get("type") == "tool" else None
    if protocol == "gemini":
        cfg = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {})
        names = cfg.get("allowedFunctionNames") or []
        return names[0] if cfg.get("mode") == "ANY" and len(names) == 1 else None
    if protocol == "bedrock":
        choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
        return (choice.get("tool") or {}).get("name")
    raise AssertionError(protocol)
