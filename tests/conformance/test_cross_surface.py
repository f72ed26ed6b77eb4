"""Any surface to any provider (issue 5 point 6): each inbound surface (OpenAI, Azure OpenAI,
Anthropic, Gemini, Bedrock Converse) crossed with the providers of the other protocols, whole and
streamed, text and tools. Each cell is driven by the surface's own SDK, checks the answer's shape
with that SDK's response models (validated from the raw JSON or event stream), and checks what
the simulator received in the provider's protocol."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import anthropic
import httpx
import openai
import pytest
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent
from conformance_kit import TlsGateway, need_surface, start_tls_gateway
from conformance_cases import SECRET
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter
from conformance_kit import sample_pdf, sample_png
from upstream_view import media_blocks, sampling, system_text, tool_call_and_result_ids, tool_names, turns

from lmgate.simulator.testing import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
from lmgate.testing import RunningGateway, start_gateway

KEY = "sk-cross-surface-client"
SYSTEM = "Answer briefly."
CALL = '[[sim: tool=get_weather args={"city": "Paris"}]] What is the weather in Paris?'
RESULT = {"temperature_c": 21}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

# provider -> (protocol, model name at lmgate, whole path, stream path) as the simulator sees them
PROVIDERS = {
    "openai": ("openai", "/v1/chat/completions", "/v1/chat/completions"),
    "anthropic": ("anthropic", "/v1/messages", "/v1/messages"),
    "gemini": ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
    "bedrock": ("bedrock", "/model/us.amazon.nova-lite-v1:0/converse", "/model/us.amazon.nova-lite-v1:0/converse-stream"),
}
# Models that read PDFs natively (the catalog's gpt-4o-mini and claude-3-haiku rows list no
# documents; lmgate would send their text instead, so these routes declare document input).
DOC_MODEL = {"openai": "docs-via-openai", "anthropic": "docs-via-anthropic", "gemini": "via-gemini", "bedrock": "via-bedrock"}
SURFACE_PROTOCOL = {"openai": "openai", "azure": "openai", "anthropic": "anthropic", "gemini": "gemini", "bedrock": "bedrock"}
MATRIX = [(s, p) for s in SURFACE_PROTOCOL for p in PROVIDERS if PROVIDERS[p][0] != SURFACE_PROTOCOL[s]]

CONFIG = """
providers:
  oai: {{type: openai, base_url: "{sim}/v1", api_key: "{secret}"}}
  anth: {{type: anthropic, base_url: "{sim}", api_key: "{secret}"}}
  gem: {{type: gemini, base_url: "{sim}", api_key: "{secret}"}}
  aws: {{type: bedrock, base_url: "{sim}", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
models:
  - name: via-openai
    deployments: [{{provider: oai, model: gpt-4o-mini}}]
  - name: via-anthropic
    deployments: [{{provider: anth, model: claude-3-haiku-20240307}}]
  - name: via-gemini
    deployments: [{{provider: gem, model: gemini-2.5-flash}}]
  - name: via-bedrock
    deployments: [{{provider: aws, model: us.amazon.nova-lite-v1:0}}]
  - name: docs-via-openai
    deployments: [{{provider: oai, model: gpt-4o-mini}}]
    modalities: [text, image, document]
  - name: docs-via-anthropic
    deployments: [{{provider: anth, model: claude-3-haiku-20240307}}]
    modalities: [text, image, document]
{throttled}
keys:
  - {{key: {key}, name: cross}}
router: {{retries: 0, backoff_s: 0, allowed_fails: 1000, cooldown_s: 0}}
"""


@dataclass
class ToolCall:
    id: str
    name: str
    args: dict[str, Any]


@dataclass
class Failure:
    """An error as the surface's SDK raised it: HTTP status, Retry-After, the error's type or code."""

    status: int
    retry_after: str | None
    kind: str


@dataclass
class Answer:
    """What a surface answered, read through its own SDK types."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    finish: str = ""
    input_tokens: int = 0
    output_tokens: int = 0


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """(event name, data) of each server-sent event."""
    event, data = None, []
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield event, "\n".join(data)


# ---------------------------------------------------------------- one driver per surface


class OpenAIDriver:
    """The openai SDK (OpenAI or AzureOpenAI): chat.completions, tool_calls and tool messages."""

    def __init__(self, client: openai.OpenAI) -> None:
        self.client = client

    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": SCHEMA}}]

    def ask(self, model: str, text: str, stream: bool, tools: bool, image: bytes | None = None, pdf: bytes | None = None) -> Answer:
        content: Any = text
        if image is not None:
            content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()}}]
        if pdf is not None:
            content = [{"type": "text", "text": text},
                       {"type": "file", "file": {"filename": "doc.pdf", "file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode()}}]
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]
        return self._call(model, messages, stream, tools)

    def sample(self, model: str) -> None:
        """A call with temperature 0.3, top_p 0.8, at most 200 tokens, stop at END."""
        self.client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Be careful"}],
                                            temperature=0.3, top_p=0.8, max_tokens=200, stop=["END"])

    def broken(self, model: str, text: str) -> tuple[str, str]:
        """A stream the upstream breaks: (text before the break, the error event's code)."""
        out, code = "", ""
        with self.client.chat.completions.with_streaming_response.create(model=model, messages=[{"role": "user", "content": text}], stream=True) as resp:
            for _, data in sse_events(resp.iter_lines()):
                obj = json.loads(data)
                if "error" in obj:
                    code = obj["error"]["code"]
                    continue
                out += "".join(c.delta.content or "" for c in ChatCompletionChunk.model_validate(obj).choices)
        return out, code

    def fail(self, model: str, text: str) -> Failure:
        try:
            self.client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
        except openai.APIStatusError as exc:
            body = exc.response.json()
            assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), body
            return Failure(exc.status_code, exc.response.headers.get("retry-after"), body["error"]["code"])
        raise AssertionError("no error")

    def follow_up(self, model: str, text: str, call: ToolCall, stream: bool) -> Answer:
        messages = [
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": text},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": json.dumps(call.args)}}]},
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps(RESULT)},
        ]
        return self._call(model, messages, stream, True)

    def _call(self, model: str, messages: list[dict[str, Any]], stream: bool, tools: bool) -> Answer:
        extra: dict[str, Any] = {"tools": self.tools} if tools else {}
        if not stream:
            raw = self.client.chat.completions.with_raw_response.create(model=model, messages=messages, **extra)
            r = ChatCompletion.model_validate(raw.http_response.json())
            assert r.object == "chat.completion" and len(r.choices) == 1
            m = r.choices[0].message
            calls = [ToolCall(c.id, c.function.name, json.loads(c.function.arguments)) for c in m.tool_calls or []]
            assert r.usage is not None
            return Answer(m.content or "", calls, r.choices[0].finish_reason, r.usage.prompt_tokens, r.usage.completion_tokens)
        out = Answer()
        parts: dict[int, dict[str, Any]] = {}
        with self.client.chat.completions.with_streaming_response.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}, **extra
        ) as resp:
            for _, data in sse_events(resp.iter_lines()):
                if data == "[DONE]":
                    continue
                chunk = ChatCompletionChunk.model_validate(json.loads(data))
                assert chunk.object == "chat.completion.chunk"
                if chunk.usage is not None:
                    out.input_tokens, out.output_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                for choice in chunk.choices:
                    out.text += choice.delta.content or ""
                    out.finish = choice.finish_reason or out.finish
                    for tc in choice.delta.tool_calls or []:
                        p = parts.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                        p["id"] = tc.id or p["id"]
                        if tc.function is not None:
                            p["name"] = tc.function.name or p["name"]
                            p["args"] += tc.function.arguments or ""
        out.calls = [ToolCall(p["id"], p["name"], json.loads(p["args"])) for _, p in sorted(parts.items())]
        return out


class AnthropicDriver:
    """The anthropic SDK: messages, tool_use blocks and tool_result blocks."""

    tools = [{"name": "get_weather", "description": "Weather in a city", "input_schema": SCHEMA}]
    finish = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}

    def __init__(self, client: anthropic.Anthropic) -> None:
        self.client = client

    def ask(self, model: str, text: str, stream: bool, tools: bool, image: bytes | None = None, pdf: bytes | None = None) -> Answer:
        content: Any = text
        if image is not None:
            content = [{"type": "text", "text": text},
                       {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(image).decode()}}]
        if pdf is not None:
            content = [{"type": "text", "text": text},
                       {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf).decode()}}]
        return self._call(model, [{"role": "user", "content": content}], stream, tools)

    def sample(self, model: str) -> None:
        # This SDK version has no temperature/top_p arguments any more; the API still takes them.
        self.client.messages.create(model=model, messages=[{"role": "user", "content": "Be careful"}],
                                    max_tokens=200, stop_sequences=["END"], extra_body={"temperature": 0.3, "top_p": 0.8})

    def broken(self, model: str, text: str) -> tuple[str, str]:
        out, kind = "", ""
        adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
        with self.client.messages.with_streaming_response.create(model=model, max_tokens=512, messages=[{"role": "user", "content": text}], stream=True) as resp:
            for name, data in sse_events(resp.iter_lines()):
                if name == "error":
                    kind = ErrorResponse.model_validate(json.loads(data)).error.type
                elif name != "ping":
                    ev = adapter.validate_python(json.loads(data))
                    if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                        out += ev.delta.text
        return out, kind

    def fail(self, model: str, text: str) -> Failure:
        try:
            self.client.messages.create(model=model, max_tokens=100, messages=[{"role": "user", "content": text}])
        except anthropic.APIStatusError as exc:
            err = ErrorResponse.model_validate(exc.response.json())
            assert err.type == "error"
            return Failure(exc.status_code, exc.response.headers.get("retry-after"), err.error.type)
        raise AssertionError("no error")

    def follow_up(self, model: str, text: str, call: ToolCall, stream: bool) -> Answer:
        messages = [
            {"role": "user", "content": text},
            {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.args}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": json.dumps(RESULT)}]},
        ]
        return self._call(model, messages, stream, True)

    def _call(self, model: str, messages: list[dict[str, Any]], stream: bool, tools: bool) -> Answer:
        extra: dict[str, Any] = {"tools": self.tools} if tools else {}
        if not stream:
            raw = self.client.messages.with_raw_response.create(model=model, max_tokens=512, system=SYSTEM, messages=messages, **extra)
            m = Message.model_validate(raw.http_response.json())
            assert m.type == "message" and m.role == "assistant"
            text = "".join(b.text for b in m.content if b.type == "text")
            calls = [ToolCall(b.id, b.name, dict(b.input)) for b in m.content if b.type == "tool_use"]  # type: ignore[arg-type]
            return Answer(text, calls, self.finish[m.stop_reason or ""], m.usage.input_tokens, m.usage.output_tokens)
        adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
        out = Answer()
        blocks: dict[int, dict[str, Any]] = {}
        kinds = []
        with self.client.messages.with_streaming_response.create(
            model=model, max_tokens=512, system=SYSTEM, messages=messages, stream=True, **extra
        ) as resp:
            for name, data in sse_events(resp.iter_lines()):
                if name == "ping":
                    continue
                ev = adapter.validate_python(json.loads(data))
                assert ev.type == name
                kinds.append(ev.type)
                if ev.type == "message_start":
                    out.input_tokens = ev.message.usage.input_tokens
                elif ev.type == "content_block_start":
                    b = ev.content_block
                    blocks[ev.index] = {"type": b.type, "id": getattr(b, "id", ""), "name": getattr(b, "name", ""), "json": ""}
                elif ev.type == "content_block_delta":
                    if ev.delta.type == "text_delta":
                        out.text += ev.delta.text
                    elif ev.delta.type == "input_json_delta":
                        blocks[ev.index]["json"] += ev.delta.partial_json
                elif ev.type == "message_delta":
                    out.finish = self.finish[ev.delta.stop_reason or ""]
                    out.output_tokens = ev.usage.output_tokens
                    if ev.usage.input_tokens is not None:  # as the SDK's own accumulator reads it
                        out.input_tokens = ev.usage.input_tokens
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
        out.calls = [ToolCall(b["id"], b["name"], json.loads(b["json"] or "{}")) for _, b in sorted(blocks.items()) if b["type"] == "tool_use"]
        return out


class GeminiDriver:
    """The google-genai SDK for the calls, and raw HTTP for validating the JSON Google's way
    (`GenerateContentResponse.model_validate`, which forbids unknown fields)."""

    finish = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}

    def __init__(self, client: genai.Client, base_url: str) -> None:
        self.client = client
        self.base_url = base_url
        self.tools = [gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration(name="get_weather", description="Weather in a city", parameters_json_schema=SCHEMA)])]

    def ask(self, model: str, text: str, stream: bool, tools: bool, image: bytes | None = None, pdf: bytes | None = None) -> Answer:
        parts = [gtypes.Part(text=text)]
        if image is not None:
            parts.append(gtypes.Part.from_bytes(data=image, mime_type="image/png"))
        if pdf is not None:
            parts.append(gtypes.Part.from_bytes(data=pdf, mime_type="application/pdf"))
        return self._call(model, [gtypes.Content(role="user", parts=parts)], stream, tools)

    def sample(self, model: str) -> None:
        self.client.models.generate_content(model=model, contents="Be careful", config=gtypes.GenerateContentConfig(
            temperature=0.3, top_p=0.8, max_output_tokens=200, stop_sequences=["END"]))

    def broken(self, model: str, text: str) -> tuple[str, str]:
        out, status = "", ""
        url = f"{self.base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        with httpx.stream("POST", url, json={"contents": [{"role": "user", "parts": [{"text": text}]}]}, headers={"x-goog-api-key": KEY}, timeout=30) as r:
            for _, data in sse_events(r.iter_lines()):
                obj = json.loads(data)
                if "error" in obj:
                    assert {"code", "message", "status"} <= set(obj["error"])
                    status = obj["error"]["status"]
                    continue
                out += self._read([gtypes.GenerateContentResponse.model_validate(obj)]).text
        return out, status

    def fail(self, model: str, text: str) -> Failure:
        try:
            self.client.models.generate_content(model=model, contents=text)
        except genai_errors.APIError as exc:
            assert isinstance(exc.details, dict) and {"code", "message", "status"} <= set(exc.details["error"]), exc.details
            headers = getattr(exc.response, "headers", {}) or {}
            return Failure(exc.code, headers.get("retry-after"), exc.status or "")
        raise AssertionError("no error")

    def follow_up(self, model: str, text: str, call: ToolCall, stream: bool) -> Answer:
        contents = [
            gtypes.Content(role="user", parts=[gtypes.Part(text=text)]),
            gtypes.Content(role="model", parts=[gtypes.Part(function_call=gtypes.FunctionCall(id=call.id, name=call.name, args=call.args))]),
            gtypes.Content(role="user", parts=[gtypes.Part(function_response=gtypes.FunctionResponse(id=call.id, name=call.name, response=RESULT))]),
        ]
        return self._call(model, contents, stream, True)

    def _config(self, tools: bool) -> gtypes.GenerateContentConfig:
        return gtypes.GenerateContentConfig(
            system_instruction=SYSTEM, tools=self.tools if tools else None,
            automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
        )

    def _read(self, responses: list[gtypes.GenerateContentResponse]) -> Answer:
        out = Answer()
        for r in responses:
            cand = (r.candidates or [None])[0]
            if cand is not None and cand.content is not None:
                for p in cand.content.parts or []:
                    out.text += p.text or ""
                    if p.function_call is not None:
                        out.calls.append(ToolCall(p.function_call.id or "", p.function_call.name or "", dict(p.function_call.args or {})))
            if cand is not None and cand.finish_reason is not None:
                out.finish = self.finish[cand.finish_reason.value]
            if r.usage_metadata is not None:
                out.input_tokens = r.usage_metadata.prompt_token_count or 0
                out.output_tokens = r.usage_metadata.candidates_token_count or 0
        if out.calls and out.finish == "stop":
            out.finish = "tool_calls"  # Gemini says STOP for function calls too
        return out

    def _call(self, model: str, contents: list[gtypes.Content], stream: bool, tools: bool) -> Answer:
        config = self._config(tools)
        if stream:
            sdk = self._read(list(self.client.models.generate_content_stream(model=model, contents=contents, config=config)))
        else:
            sdk = self._read([self.client.models.generate_content(model=model, contents=contents, config=config)])
        # The same request as raw JSON, validated by the SDK's own (extra="forbid") response model.
        body = {
            "contents": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in contents],
            "systemInstruction": {"parts": [{"text": SYSTEM}]},
        }
        if tools:
            body["tools"] = [{"functionDeclarations": [{"name": "get_weather", "description": "Weather in a city", "parametersJsonSchema": SCHEMA}]}]
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{self.base_url}/v1beta/models/{model}:{action}"
        with httpx.stream("POST", url, json=body, headers={"x-goog-api-key": KEY}, timeout=30) as r:
            assert r.status_code == 200, r.read()
            if stream:
                assert r.headers["content-type"].startswith("text/event-stream")
                raw = [gtypes.GenerateContentResponse.model_validate(json.loads(d)) for _, d in sse_events(r.iter_lines())]
            else:
                raw = [gtypes.GenerateContentResponse.model_validate(json.loads(r.read()))]
        checked = self._read(raw)
        assert (checked.text, [c.name for c in checked.calls], checked.finish) == (sdk.text, [c.name for c in sdk.calls], sdk.finish)
        return sdk


class BedrockDriver:
    """boto3's bedrock-runtime client with a Bedrock API key: converse / converse_stream."""

    finish = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}

    def __init__(self, client: Any) -> None:
        self.client = client

    tool_config = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather in a city", "inputSchema": {"json": SCHEMA}}}]}

    def ask(self, model: str, text: str, stream: bool, tools: bool, image: bytes | None = None, pdf: bytes | None = None) -> Answer:
        content: list[dict[str, Any]] = [{"text": text}]
        if image is not None:
            content.append({"image": {"format": "png", "source": {"bytes": image}}})
        if pdf is not None:
            content.append({"document": {"format": "pdf", "name": "doc", "source": {"bytes": pdf}}})
        return self._call(model, [{"role": "user", "content": content}], stream, tools)

    def sample(self, model: str) -> None:
        self.client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "Be careful"}]}],
                             inferenceConfig={"temperature": 0.3, "topP": 0.8, "maxTokens": 200, "stopSequences": ["END"]})

    def broken(self, model: str, text: str) -> tuple[str, str]:
        from botocore.exceptions import EventStreamError

        out = ""
        r = self.client.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": text}]}])
        try:
            for ev in r["stream"]:
                out += ev.get("contentBlockDelta", {}).get("delta", {}).get("text", "")
        except EventStreamError as exc:
            return out, exc.response["Error"]["Code"]
        return out, ""

    def fail(self, model: str, text: str) -> Failure:
        from botocore.exceptions import ClientError

        try:
            self.client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": text}]}])
        except ClientError as exc:
            meta = exc.response["ResponseMetadata"]
            return Failure(meta["HTTPStatusCode"], meta["HTTPHeaders"].get("retry-after"), exc.response["Error"]["Code"])
        raise AssertionError("no error")

    def follow_up(self, model: str, text: str, call: ToolCall, stream: bool) -> Answer:
        messages = [
            {"role": "user", "content": [{"text": text}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.args}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": call.id, "content": [{"json": RESULT}]}}]},
        ]
        return self._call(model, messages, stream, True)

    def _call(self, model: str, messages: list[dict[str, Any]], stream: bool, tools: bool) -> Answer:
        extra: dict[str, Any] = {"toolConfig": self.tool_config} if tools else {}
        kwargs = dict(modelId=model, messages=messages, system=[{"text": SYSTEM}], inferenceConfig={"maxTokens": 512}, **extra)
        if not stream:
            r = self.client.converse(**kwargs)
            assert {"output", "stopReason", "usage", "metrics"} <= set(r)
            content = r["output"]["message"]["content"]
            assert r["output"]["message"]["role"] == "assistant"
            text = "".join(b.get("text", "") for b in content)
            calls = [ToolCall(b["toolUse"]["toolUseId"], b["toolUse"]["name"], b["toolUse"]["input"]) for b in content if "toolUse" in b]
            return Answer(text, calls, self.finish[r["stopReason"]], r["usage"]["inputTokens"], r["usage"]["outputTokens"])
        r = self.client.converse_stream(**kwargs)
        assert r["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
        out = Answer()
        blocks: dict[int, dict[str, Any]] = {}
        kinds = []
        for ev in r["stream"]:
            (kind, body), = ev.items()
            kinds.append(kind)
            if kind == "contentBlockStart" and "toolUse" in body["start"]:
                blocks[body["contentBlockIndex"]] = {"id": body["start"]["toolUse"]["toolUseId"], "name": body["start"]["toolUse"]["name"], "json": ""}
            elif kind == "contentBlockDelta":
                delta = body["delta"]
                out.text += delta.get("text", "")
                if "toolUse" in delta:
                    blocks[body["contentBlockIndex"]]["json"] += delta["toolUse"]["input"]
            elif kind == "messageStop":
                out.finish = self.finish[body["stopReason"]]
            elif kind == "metadata":
                out.input_tokens, out.output_tokens = body["usage"]["inputTokens"], body["usage"]["outputTokens"]
        assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
        out.calls = [ToolCall(b["id"], b["name"], json.loads(b["json"] or "{}")) for _, b in sorted(blocks.items())]
        return out


# ---------------------------------------------------------------- fixtures


UPSTREAM_OF = {"openai": "oai, model: gpt-4o-mini", "anthropic": "anth, model: claude-3-haiku-20240307",
               "gemini": "gem, model: gemini-2.5-flash", "bedrock": "aws, model: us.amazon.nova-lite-v1:0"}


def throttled_models() -> str:
    """A route per cell for the rate-limit test: a 429's Retry-After holds back only its own route's
    deployment (lmgate waits up to router.max_backoff_s before calling it again), so no cell waits
    for another's."""
    return "\n".join(f"  - name: t-{s}-{p}\n    deployments: [{{provider: {UPSTREAM_OF[p]}}}]" for s, p in MATRIX)


@pytest.fixture(scope="module")
def config_text(sim) -> str:  # type: ignore[no-untyped-def]
    return CONFIG.format(sim=sim.base_url, secret=SECRET, ak=AWS_ACCESS_KEY_ID, sk=AWS_SECRET_ACCESS_KEY, key=KEY, throttled=throttled_models())


@pytest.fixture(scope="module")
def gw(config_text: str) -> Iterator[RunningGateway]:
    g = start_gateway(config_text, steps=[])
    yield g
    g.stop()


@pytest.fixture(scope="module")
def tls_gw(config_text: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    g = start_tls_gateway(config_text, tmp_path_factory.mktemp("tls"), steps=[])
    yield g
    g.stop()


@pytest.fixture(scope="module")
def bedrock_client(tls_gw: TlsGateway) -> Iterator[Any]:
    """boto3's bedrock-runtime client with a Bedrock API key, closed before the TLS gateway stops."""
    import boto3
    from botocore.config import Config as BotoConfig

    env = pytest.MonkeyPatch()  # botocore reads the key from the environment on every call
    env.setenv("AWS_BEARER_TOKEN_BEDROCK", KEY)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.delenv(k, raising=False)
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=tls_gw.base_url + "/proxy/api/v1",
                          verify=tls_gw.ca_file, config=BotoConfig(retries={"mode": "standard", "total_max_attempts": 1}))
    yield client
    client.close()
    env.undo()


@pytest.fixture(scope="module")
def drivers(gw: RunningGateway, request: pytest.FixtureRequest) -> Callable[[str], Any]:
    """Drivers are built on first use (the Bedrock one needs the TLS gateway and boto3)."""
    made: dict[str, Any] = {}
    factories: dict[str, Callable[[], Any]] = {
        "openai": lambda: OpenAIDriver(openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)),
        "azure": lambda: OpenAIDriver(openai.AzureOpenAI(azure_endpoint=gw.base_url + "/proxy/api/v1/azure", api_version="2024-02-15-preview", api_key=KEY, max_retries=0)),
        "anthropic": lambda: AnthropicDriver(anthropic.Anthropic(base_url=gw.base_url, api_key=KEY, max_retries=0)),
        "gemini": lambda: GeminiDriver(genai.Client(api_key=KEY, http_options=gtypes.HttpOptions(base_url=gw.base_url)), gw.base_url),
        "bedrock": lambda: BedrockDriver(request.getfixturevalue("bedrock_client")),
    }

    def get(name: str) -> Any:
        if name not in made:
            made[name] = factories[name]()
        return made[name]

    return get


def upstream(sim, provider: str, stream: bool) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    path = PROVIDERS[provider][2 if stream else 1]
    got = [r for r in sim.requests() if r["path"] == path]
    assert got, f"{provider} received nothing at {path}: {[r['path'] for r in sim.requests()]}"
    return got[-1]


cell = pytest.mark.parametrize("surface,provider", MATRIX, ids=[f"{s}->{p}" for s, p in MATRIX])
mode = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


# ---------------------------------------------------------------- the matrix


@cell
@mode
def test_text(drivers, sim, surface: str, provider: str, stream: bool) -> None:  # type: ignore[no-untyped-def]
    need_surface(surface)
    driver = drivers(surface)
    model = "via-" + provider
    prompt = f"Hello from the {surface} surface"
    sim.clear()
    a = driver.ask(model, prompt, stream, tools=False)
    assert f'you said "{prompt}"' in a.text and a.finish == "stop" and not a.calls
    assert a.input_tokens > 0 and a.output_tokens > 0
    sent = upstream(sim, provider, stream)
    protocol = PROVIDERS[provider][0]
    assert turns(protocol, sent["body"]) == [("user", prompt)]
    assert system_text(protocol, sent["body"]) == SYSTEM
    if stream:
        whole = driver.ask(model, prompt, False, tools=False)
        assert a.text == whole.text and (a.input_tokens, a.output_tokens) == (whole.input_tokens, whole.output_tokens)


@cell
@mode
def test_tools_round_trip(drivers, sim, surface: str, provider: str, stream: bool) -> None:  # type: ignore[no-untyped-def]
    need_surface(surface)
    driver = drivers(surface)
    model = "via-" + provider
    protocol = PROVIDERS[provider][0]
    sim.clear()
    a = driver.ask(model, CALL, stream, tools=True)
    assert a.finish == "tool_calls" and len(a.calls) == 1, a
    call = a.calls[0]
    assert call.name == "get_weather" and call.args == {"city": "Paris"} and call.id
    assert tool_names(protocol, upstream(sim, provider, stream)["body"]) == ["get_weather"]

    b = driver.follow_up(model, CALL, call, stream)
    assert b.finish == "stop" and not b.calls
    assert json.loads(b.text.split("returned: ", 1)[1]) == RESULT
    calls, results = tool_call_and_result_ids(protocol, upstream(sim, provider, stream)["body"])
    assert len(calls) == 1 and calls == results
    if protocol != "gemini":  # Gemini upstream ids are optional on the wire (lmgate mints its own)
        assert calls == [call.id]  # the id the client saw is the id the upstream gets back


@cell
@mode
def test_image(drivers, sim, surface: str, provider: str, stream: bool) -> None:  # type: ignore[no-untyped-def]
    need_surface(surface)
    png = sample_png(f"{surface}-{provider}")
    sim.clear()
    a = drivers(surface).ask("via-" + provider, "What is in this image?", stream, tools=False, image=png)
    assert "I received 1 image." in a.text
    assert media_blocks(PROVIDERS[provider][0], upstream(sim, provider, stream)["body"]) in ([("image/png", png)], [("png", png)])


@cell
def test_document(drivers, sim, surface: str, provider: str) -> None:  # type: ignore[no-untyped-def]
    need_surface(surface)
    pdf = sample_pdf(f"{surface} to {provider}")
    sim.clear()
    a = drivers(surface).ask(DOC_MODEL[provider], "Summarize this document", False, tools=False, pdf=pdf)
    assert "I received 1 document." in a.text
    assert media_blocks(PROVIDERS[provider][0], upstream(sim, provider, False)["body"]) in ([("application/pdf", pdf)], [("pdf", pdf)])


@cell
@mode
def test_finish_reason_length(drivers, surface: str, provider: str, stream: bool) -> None:  # type: ignore[no-untyped-def]
    need_surface(surface)
    a = drivers(surface).ask("via-" + provider, "[[sim: finish=length]] Tell me everything", stream, tools=False)
    assert a.finish == "length" and a.text


# Each surface's own name for an upstream rate limit and an overloaded upstream.
ERROR_KINDS = {
    "openai": ("upstream_rate_limited", "upstream_overloaded"),
    "azure": ("upstream_rate_limited", "upstream_overloaded"),
    "anthropic": ("rate_limit_error", "overloaded_error"),
    "gemini": ("RESOURCE_EXHAUSTED", "UNAVAILABLE"),
    "bedrock": ("ThrottlingException", "ServiceUnavailableException"),
}


@cell
def test_errors_in_the_surface_shape(drivers, surface: str, provider: str) -> None:  # type: ignore[no-untyped-def]
    need_surface(surface)
    driver = drivers(surface)
    limited, overloaded = ERROR_KINDS[surface]
    f = driver.fail(f"t-{surface}-{provider}", "[[sim: status=429 retry_after=2]] hi")
    assert (f.status, f.kind) == (429, limited)
    if provider != "bedrock":  # Bedrock's throttling answer carries no Retry-After to pass on
        assert f.retry_after == "2"
    f = driver.fail("via-" + provider, "[[sim: status=503]] hi")
    assert (f.status, f.kind) == (503, overloaded)


def test_anthropic_stream_message_start_carries_the_input_tokens(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("anthropic")
    body = {"model": "via-anthropic", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "Count my tokens"}]}
    with httpx.stream("POST", gw.base_url + "/v1/messages", json=body, headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"}) as r:
        events = [(name, json.loads(data)) for name, data in sse_events(r.iter_lines())]
    start = next(d for n, d in events if n == "message_start")
    final = next(d for n, d in events if n == "message_delta")
    assert final["usage"]["input_tokens"] > 0
    assert start["message"]["usage"]["input_tokens"] == final["usage"]["input_tokens"]


@cell
def test_a_stream_cut_mid_way_ends_with_the_surface_error_event(drivers, surface: str, provider: str) -> None:  # type: ignore[no-untyped-def]
    """The upstream drops the connection after 8 frames: the client gets the text so far, then an
    error event in its own protocol (OpenAI `data: {"error"}`, Anthropic `event: error`, Gemini
    `{"error": {...}}`, Bedrock an exception message, which boto3 raises as EventStreamError)."""
    need_surface(surface)
    text, kind = drivers(surface).broken("via-" + provider, "[[sim: cut_after=8 tokens=60]] a long answer please")
    assert text.startswith("Simulated reply")
    assert kind == BROKEN_KIND[surface]


BROKEN_KIND = {"openai": "upstream_error", "azure": "upstream_error", "anthropic": "api_error", "gemini": "UNAVAILABLE",
               "bedrock": "modelStreamErrorException"}


@cell
def test_sampling_parameters_cross(drivers, sim, surface: str, provider: str) -> None:  # type: ignore[no-untyped-def]
    need_surface(surface)
    sim.clear()
    drivers(surface).sample("via-" + provider)
    got = sampling(PROVIDERS[provider][0], upstream(sim, provider, False)["body"])
    assert got == {"temperature": 0.3, "top_p": 0.8, "max_tokens": 200, "stop": ["END"]}
