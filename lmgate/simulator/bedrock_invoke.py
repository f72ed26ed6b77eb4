"""Bedrock InvokeModel bodies per model family: Anthropic, Llama, Nova, Titan and Cohere embeddings.

InvokeModel carries the model vendor's own JSON; each family is checked and answered in its
documented native shape. Streams wrap each native chunk as `{"bytes": base64(json)}`, the last
one carrying `amazon-bedrock-invocationMetrics`.
"""

from __future__ import annotations

from typing import Any

from lmgate.simulator import anthropic
from lmgate.simulator.answer import Plan, Prompt, count_tokens, embedding_vector
from lmgate.simulator.bedrock_converse import STOP, parse_messages, usage
from lmgate.simulator.common import SimError, new_id

EMBED_FAMILIES = ("titan-embed", "cohere-embed")
_ANTHROPIC_REQUIRED = ("anthropic_version", "max_tokens", "messages")


def _bad(message: str) -> SimError:
    return SimError(400, message, etype="ValidationException")


def _malformed(detail: str) -> SimError:
    return _bad(f"Malformed input request: {detail}, please reformat your input and try again.")


def resolve_family(model_id: str) -> str:
    """Which native body a model id takes (inference profiles such as `us.` prefixes too)."""
    mid = model_id.lower()
    for marker, family in (("anthropic.", "anthropic"), ("meta.llama", "llama"),
                           ("amazon.nova", "nova"), ("amazon.titan-embed", "titan-embed"),
                           ("cohere.embed", "cohere-embed")):
        if marker in mid:
            return family
    raise _bad("The provided model identifier is invalid.")


def parse_chat_body(family: str, body: Any, model: str) -> Prompt:
    if not isinstance(body, dict):
        raise _malformed("#: expected type: JSONObject")
    if family == "anthropic":
        for key in _ANTHROPIC_REQUIRED:
            if key not in body:
                raise _malformed(f"#: required key [{key}] not found")
        for key in ("model", "stream"):
            if key in body:
                raise _malformed(f"#: extraneous key [{key}] is not permitted")
        if body["anthropic_version"] != "bedrock-2023-05-31":
            raise _malformed("#/anthropic_version: bedrock-2023-05-31 is the only supported "
                             "version")
        prompt, _ = anthropic.parse_messages(body, bedrock=True)
        prompt.model = model
        return prompt
    if family == "llama":
        text = body.get("prompt")
        if not isinstance(text, str):
            raise _malformed("#: required key [prompt] not found")
        prompt = Prompt(model=model, last_user_text=text, input_chars=len(text))
        prompt.max_tokens = body.get("max_gen_len")
        return prompt
    if family == "nova":
        prompt = Prompt(model=model)
        for block in body.get("system") or []:
            prompt.input_chars += len(str(block.get("text", ""))) if isinstance(block, dict) else 0
        parse_messages(body.get("messages"), prompt)
        config = body.get("inferenceConfig") or {}
        prompt.max_tokens = config.get("maxTokens") or config.get("max_new_tokens")
        for tool in (body.get("toolConfig") or {}).get("tools") or []:
            spec = tool.get("toolSpec") or {}
            if spec.get("name"):
                prompt.tools.append((spec["name"], (spec.get("inputSchema") or {}).get("json") or {}))
        return prompt
    raise _bad("The provided model identifier is invalid.")


def render_whole(family: str, plan: Plan, model: str) -> dict[str, Any]:
    if family == "anthropic":
        return anthropic.render_message(plan, model, "msg_bdrk_01" + plan.short_id(22))
    if family == "llama":
        return {"generation": plan.text, "prompt_token_count": plan.input_tokens,
                "generation_token_count": plan.output_tokens,
                "stop_reason": "length" if plan.finish == "length" else "stop"}
    if plan.kind == "tool":
        content = [{"toolUse": {"toolUseId": "tooluse_" + plan.short_id(22),
                                "name": plan.tool_name, "input": plan.tool_args}}]
    else:
        content = [{"text": plan.text}]
    nova_usage = {"inputTokens": plan.input_tokens, "outputTokens": plan.output_tokens,
                  "totalTokens": plan.input_tokens + plan.output_tokens,
                  "cacheReadInputTokenCount": plan.cached_tokens,
                  "cacheWriteInputTokenCount": plan.cache_write_tokens}
    return {"output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": STOP[plan.finish], "usage": nova_usage}


def _metrics(plan: Plan) -> dict[str, int]:
    return {"inputTokenCount": plan.input_tokens, "outputTokenCount": plan.output_tokens,
            "invocationLatency": 100 + plan.output_tokens, "firstByteLatency": 50}


def stream_chunks(family: str, plan: Plan, model: str) -> list[dict[str, Any]]:
    """The native JSON objects of a streamed answer; the last carries invocation metrics."""
    if family == "anthropic":
        chunks = anthropic.stream_events(plan, model, "msg_bdrk_01" + plan.short_id(22))
        chunks = [c for c in chunks if c["type"] != "ping"]
    elif family == "llama":
        pieces = plan.chunks() or [""]
        chunks = [{"generation": piece, "prompt_token_count": plan.input_tokens if i == 0 else None,
                   "generation_token_count": i + 1, "stop_reason": None}
                  for i, piece in enumerate(pieces)]
        chunks.append({"generation": "", "prompt_token_count": None,
                       "generation_token_count": plan.output_tokens,
                       "stop_reason": "length" if plan.finish == "length" else "stop"})
    else:
        chunks = [{"messageStart": {"role": "assistant"}}]
        if plan.kind == "tool":
            chunks.append({"contentBlockStart": {"contentBlockIndex": 0, "start": {"toolUse": {
                "toolUseId": "tooluse_" + plan.short_id(22), "name": plan.tool_name}}}})
            chunks += [{"contentBlockDelta": {"contentBlockIndex": 0,
                                              "delta": {"toolUse": {"input": p}}}}
                       for p in plan.chunks()]
        else:
            chunks += [{"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": p}}}
                       for p in plan.chunks()]
        chunks.append({"contentBlockStop": {"contentBlockIndex": 0}})
        chunks.append({"messageStop": {"stopReason": STOP[plan.finish]}})
        chunks.append({"metadata": {"usage": usage(plan), "metrics": {}, "trace": {}}})
    chunks[-1] = {**chunks[-1], "amazon-bedrock-invocationMetrics": _metrics(plan)}
    return chunks


def embed_texts(family: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        raise _malformed("#: expected type: JSONObject")
    if family == "titan-embed":
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            raise _malformed("#: required key [inputText] not found")
        return [text]
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts:
        raise _malformed("#: required key [texts] not found")
    if "input_type" not in body:
        raise _malformed("#: required key [input_type] not found")
    if len(texts) > 96:
        raise _malformed(f"#/texts: expected maximum item count: 96, found: {len(texts)}")
    return [str(t) for t in texts]


def embed(family: str, body: dict[str, Any], texts: list[str], model: str
          ) -> tuple[dict[str, Any], int]:
    """The native embeddings answer and its input token count."""
    tokens = sum(count_tokens(len(t)) for t in texts)
    if family == "titan-embed":
        dims = body.get("dimensions") or (1536 if "v1" in model else 1024)
        if dims not in (256, 512, 1024, 1536):
            raise _malformed(f"#/dimensions: {dims} is not a valid enum value")
        return {"embedding": embedding_vector(texts[0], dims), "inputTextTokenCount": tokens}, tokens
    vectors = [embedding_vector(t, 1024) for t in texts]
    out: dict[str, Any] = {"id": new_id("", 36), "texts": texts}
    if body.get("embedding_types"):
        out["embeddings"] = {"float": vectors}
        out["response_type"] = "embeddings_by_type"
    else:
        out["embeddings"] = vectors
        out["response_type"] = "embeddings_floats"
    return out, tokens
