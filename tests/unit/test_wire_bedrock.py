"""The Bedrock Converse codec (and Nova/Llama InvokeModel bodies), the ConverseStream events both ways."""

from __future__ import annotations

import base64

import orjson
import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.parsers import RestJSONParser

from lmgate.errors import BadRequest, UpstreamOverloaded, UpstreamRateLimited, Unprocessable
from lmgate.types import ChatRequest, ChatResponse, Choice, MediaPart, Message, StreamFinish, StreamStart, StreamUsage, TextDelta, TextPart, Tool, ToolCall, ToolCallDelta, ToolChoice, Usage
from lmgate.wire import bedrock as codec
from lmgate.wire.accumulate import Accumulator
from lmgate.wire.bedrock_stream import EventRenderer, StreamDecoder, exception_error

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
PDF = b"%PDF-1.7 fake"
MP4 = b"\x00\x00\x00\x18ftypmp42"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def service() -> ServiceModel:
    return ServiceModel(Loader().load_service_model("bedrock-runtime", "service-2"), "bedrock-runtime")


# ---------------------------------------------------------------- inbound


def test_parse_004_nova_bodies() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [
                {"text": "what is in these?"},
                {"image": {"format": "png", "source": {"bytes": b64(PNG)}}},
                {"document": {"format": "pdf", "name": "DocumentPDFmessages", "source": {"bytes": b64(PDF)}}},
                {"video": {"format": "mp4", "source": {"bytes": b64(MP4)}}},
            ]},
        ],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        "system": [{"text": "This is a valid system text "}],
    }
    req = codec.parse_request(body, "us.amazon.nova-pro-v1:0")
    assert req.model == "us.amazon.nova-pro-v1:0"
    assert req.messages[0].role == "system" and req.messages[0].text() == "This is a valid system text "
    parts = req.messages[1].content
    assert parts[0] == TextPart("what is in these?")
    assert parts[1] == MediaPart("image", "image/png", PNG)
    assert parts[2] == MediaPart("document", "application/pdf", PDF, name="DocumentPDFmessages")
    assert parts[3] == MediaPart("video", "video/mp4", MP4)
    assert (req.max_tokens, req.temperature, req.top_p, req.stop) == (512, 0.5, 0.9, ["END"])
    assert req.raw is body and req.raw_format == "bedrock"


def test_parse_tools_and_history() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"text": "weather?"}]},
            {"role": "assistant", "content": [{"text": "checking"}, {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"temp": 21}}, {"text": "sunny"}]}}, {"text": "so?"}]},
        ],
        "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "description": "w", "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"tool": {"name": "get_weather"}}},
        "additionalModelRequestFields": {"top_k": 3},
    }
    req = codec.parse_request(body, "m")
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "user"]
    assert req.messages[1].tool_calls == [ToolCall("tooluse_1", "get_weather", '{"city":"Paris"}')]
    assert req.messages[2].tool_call_id == "tooluse_1" and req.messages[2].name == "get_weather"
    assert [p.text for p in req.messages[2].content] == ['{"temp":21}', "sunny"]  # type: ignore[union-attr]
    assert req.tools == [Tool("get_weather", "w", {"type": "object"})]
    assert req.tool_choice == ToolChoice("function", "get_weather")
    assert req.extra == {"additionalModelRequestFields": {"top_k": 3}}


@pytest.mark.parametrize(
    "body, error",
    [
        ({}, BadRequest),
        ({"messages": []}, BadRequest),
        ({"messages": [{"role": "system", "content": [{"text": "x"}]}]}, Unprocessable),
        ({"messages": [{"role": "user", "content": [{"image": {"format": "tiff", "source": {"bytes": "AA=="}}}]}]}, Unprocessable),
        ({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "%%%"}}}]}]}, BadRequest),
        ({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/k"}}}}]}]}, BadRequest),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}], "inferenceConfig": {"temperature": 3}}, Unprocessable),
    ],
)
def test_parse_refuses_bad_bodies(body: dict, error: type) -> None:
    with pytest.raises(error):
        codec.parse_request(body, "m")


def test_parse_native_nova_and_llama_invoke_bodies() -> None:
    nova = {"schemaVersion": "messages-v1", "messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"max_new_tokens": 300, "topK": 20}}
    assert codec.invoke_family(nova) == "nova"
    req = codec.parse_request(nova, "n", native=True)
    assert req.max_tokens == 300 and req.top_k == 20 and req.raw is None
    llama = {"prompt": "<|begin_of_text|>hi", "max_gen_len": 128, "temperature": 0.2}
    assert codec.invoke_family(llama) == "llama"
    req = codec.parse_llama(llama, "l")
    assert req.messages[0].text() == "<|begin_of_text|>hi" and req.max_tokens == 128
    assert codec.invoke_family({"anthropic_version": "bedrock-2023-05-31", "messages": []}) == "anthropic"


# ---------------------------------------------------------------- outbound


def test_render_request_is_valid_for_the_service_model() -> None:
    req = ChatRequest(
        model="gpt-4o",
        messages=[
            Message("system", [TextPart("sys")]),
            Message("user", [TextPart("look"), MediaPart("image", "image/jpeg", PNG), MediaPart("document", "application/pdf", PDF, name="report.v2.pdf"), MediaPart("document", "text/plain", b"notes", name="report.v2.txt")]),
            Message("user", [TextPart("and this")]),
            Message("assistant", [], [ToolCall("call_x!1", "f", '{"a": 1}')]),
            Message("tool", [TextPart("result")], tool_call_id="call_x!1"),
        ],
        max_tokens=100,
        temperature=1.4,
        top_p=0.8,
        stop=["\n\n"],
        tools=[Tool("f", "does f", {"type": "object", "properties": {"a": {"type": "integer"}}})],
        tool_choice=ToolChoice("required"),
    )
    body = codec.render_request(req)
    assert body["system"] == [{"text": "sys"}]
    assert body["inferenceConfig"] == {"maxTokens": 100, "temperature": 1.0, "topP": 0.8, "stopSequences": ["\n\n"]}
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user"]
    first = body["messages"][0]["content"]
    assert first[1] == {"image": {"format": "jpeg", "source": {"bytes": b64(PNG)}}}
    assert first[2] == {"document": {"format": "pdf", "name": "report-v2", "source": {"bytes": b64(PDF)}}}
    assert first[3]["document"]["name"] == "report-v2 (2)" and first[3]["document"]["format"] == "txt"
    assert first[4] == {"text": "and this"}
    assert body["messages"][1]["content"] == [{"toolUse": {"toolUseId": "call_x_1", "name": "f", "input": {"a": 1}}}]
    assert body["messages"][2]["content"] == [{"toolResult": {"toolUseId": "call_x_1", "content": [{"text": "result"}]}}]
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    # botocore's own validator accepts it (blobs back to bytes, as boto3 users pass them)
    from botocore.validate import ParamValidator

    params = orjson.loads(orjson.dumps(body))
    for block in params["messages"][0]["content"]:
        for kind in ("image", "document"):
            if kind in block:
                block[kind]["source"]["bytes"] = base64.b64decode(block[kind]["source"]["bytes"])
    report = ParamValidator().validate({"modelId": "m", **params}, service().operation_model("Converse").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_render_tool_history_without_tools_declares_them() -> None:
    req = ChatRequest(model="m", messages=[
        Message("user", [TextPart("q")]),
        Message("assistant", [], [ToolCall("t1", "lookup", "{}")]),
        Message("tool", [TextPart("r")], tool_call_id="t1"),
    ])
    body = codec.render_request(req)
    assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": "lookup", "description": "A tool used earlier in this conversation.", "inputSchema": {"json": {"type": "object"}}}}]}
    assert "inferenceConfig" not in body


def test_render_refuses_urls_and_unknown_types() -> None:
    with pytest.raises(BadRequest):
        codec.render_request(ChatRequest(model="m", messages=[Message("user", [MediaPart("image", url="https://x/y.png")])]))
    with pytest.raises(BadRequest):
        codec.render_request(ChatRequest(model="m", messages=[Message("user", [MediaPart("image", "image/bmp", b"BM")])]))


# ---------------------------------------------------------------- answers


def test_parse_response_with_cache_usage() -> None:
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}, {"toolUse": {"toolUseId": "tooluse_9", "name": "f", "input": {"x": 1}}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 4, "totalTokens": 134, "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20},
        "metrics": {"latencyMs": 120},
    }
    resp = codec.parse_response(body, "req-1")
    assert resp.id == "req-1"
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.choices[0].message.tool_calls == [ToolCall("tooluse_9", "f", '{"x":1}')]
    assert resp.usage == Usage(input_tokens=130, output_tokens=4, cached_tokens=100, cache_write_tokens=20)


@pytest.mark.parametrize("stop, finish", [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"), ("content_filtered", "content_filter"), ("guardrail_intervened", "content_filter")])
def test_stop_reasons(stop: str, finish: str) -> None:
    assert codec.finish_reason(stop) == finish


def test_render_response_parses_with_botocore() -> None:
    resp = ChatResponse("x", "m", 0, [Choice(0, Message("assistant", [TextPart("hey")], [ToolCall("call_1", "f", '{"a":2}')]), "tool_calls")], Usage(50, 5, cached_tokens=30))
    body = codec.render_response(resp, 42)
    assert body["usage"] == {"inputTokens": 20, "outputTokens": 5, "totalTokens": 55, "cacheReadInputTokens": 30, "cacheWriteInputTokens": 0}
    op = service().operation_model("Converse")
    parsed = RestJSONParser().parse({"status_code": 200, "headers": {}, "body": orjson.dumps(body)}, op.output_shape)
    assert parsed["stopReason"] == "tool_use"
    assert parsed["output"]["message"]["content"][1]["toolUse"] == {"toolUseId": "call_1", "name": "f", "input": {"a": 2}}
    assert codec.render_nova(resp)["usage"]["cacheReadInputTokenCount"] == 30
    assert codec.render_llama(resp) == {"generation": "hey", "prompt_token_count": 50, "generation_token_count": 5, "stop_reason": "stop"}


# ---------------------------------------------------------------- streams


def test_stream_decoder_and_renderer_round_trip() -> None:
    upstream = [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me "}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "check."}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "f"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a":'}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 12, "outputTokens": 9, "totalTokens": 21}, "metrics": {"latencyMs": 300}}),
    ]
    d = StreamDecoder("req-1", "nova")
    events = [e for name, payload in upstream for e in d.feed(name, payload)]
    assert events[0] == StreamStart("req-1", "nova", events[0].created)  # type: ignore[union-attr]
    assert isinstance(events[-2], StreamFinish) and events[-2].finish_reason == "tool_calls"
    assert isinstance(events[-1], StreamUsage) and events[-1].usage == Usage(12, 9)
    r = EventRenderer()
    rendered = [e for ev in events for e in r.events(ev)] + r.finish(300)
    assert rendered == upstream


def test_renderer_from_another_protocol() -> None:
    r = EventRenderer()
    out = [e for ev in [TextDelta("a"), ToolCallDelta(0, "call_1", "f", "{}"), StreamFinish("stop"), StreamUsage(Usage(3, 2))] for e in r.events(ev)] + r.finish(7)
    assert [n for n, _ in out] == ["messageStart", "contentBlockDelta", "contentBlockStop", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
    assert out[-2][1] == {"stopReason": "tool_use"}  # a tool call answered with "stop" is still a tool_use turn
    acc = Accumulator()
    d = StreamDecoder("x", "m")
    for name, payload in out:
        for e in d.feed(name, payload):
            acc.add(e)
    assert acc.response().choices[0].message.tool_calls == [ToolCall("call_1", "f", "{}")]


def test_stream_exceptions() -> None:
    assert isinstance(exception_error("throttlingException", "x", "p"), UpstreamRateLimited)
    assert isinstance(exception_error("serviceUnavailableException", "x", "p"), UpstreamOverloaded)
    assert isinstance(exception_error("validationException", "x", "p"), BadRequest)
