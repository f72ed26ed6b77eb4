"""The Anthropic Messages codec: requests and answers both ways, the SSE sequence both ways, errors."""

from __future__ import annotations

import base64

import orjson
import pytest

from lmgate.errors import BadRequest, GatewayError, NotFound, Unauthorized, UpstreamOverloaded, UpstreamRateLimited, Unprocessable
from lmgate.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    MediaPart,
    Message,
    StreamFinish,
    StreamStart,
    StreamUsage,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from lmgate.wire import anthropic as codec
from lmgate.wire.accumulate import Accumulator
from lmgate.wire.anthropic_stream import EventRenderer, StreamDecoder, sse, stream_error

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PDF = b"%PDF-1.4 fake"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------- inbound


def test_parse_full_request() -> None:
    body = {
        "model": "claude-3-haiku-20240307",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "document", "title": "spec", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "And tomorrow?"},
            ]},
        ],
        "stop_sequences": ["END"],
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 5,
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u-1"},
        "thinking": {"type": "disabled"},
    }
    req = codec.parse_request(body)
    assert req.model == "claude-3-haiku-20240307" and req.max_tokens == 300
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool", "user"]
    assert [p.text for p in req.messages[0].content] == ["Be brief.", "Be kind."]  # type: ignore[union-attr]
    user = req.messages[1].content
    assert isinstance(user[1], MediaPart) and user[1].data == PNG and user[1].media_type == "image/png"
    assert isinstance(user[2], MediaPart) and user[2].url == "https://example.com/cat.jpg"
    assert isinstance(user[3], MediaPart) and user[3].kind == "document" and user[3].data == PDF and user[3].name == "spec"
    assert isinstance(user[4], MediaPart) and user[4].data == b"plain words" and user[4].media_type == "text/plain"
    assistant = req.messages[2]
    assert assistant.text() == "Let me check."
    assert assistant.tool_calls == [ToolCall("toolu_01", "get_weather", '{"city":"Paris"}')]
    tool = req.messages[3]
    assert tool.tool_call_id == "toolu_01" and tool.name == "get_weather" and tool.text() == "sunny"
    assert req.messages[4].text() == "And tomorrow?"
    assert req.stop == ["END"] and req.temperature == 0.3 and req.top_p == 0.9 and req.top_k == 5
    assert req.tool_choice == ToolChoice("required") and req.parallel_tool_calls is False
    assert req.user == "u-1"
    assert req.extra == {"thinking": {"type": "disabled"}}
    assert req.raw is body and req.raw_format == "anthropic"


def test_parse_bedrock_invoke_body_takes_the_model_from_the_url() -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 512, "messages": [{"role": "user", "content": "say my name bot."}]}
    req = codec.parse_request(body, model="anthropic.claude-3-haiku-20240307-v1:0")
    assert req.model == "anthropic.claude-3-haiku-20240307-v1:0"
    assert req.messages[0].text() == "say my name bot."
    assert req.extra == {"anthropic_version": "bedrock-2023-05-31"}


@pytest.mark.parametrize(
    "body, error",
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, BadRequest),  # max_tokens required
        ({"model": "m", "max_tokens": 5, "messages": []}, BadRequest),
        ({"model": "m", "max_tokens": "5", "messages": [{"role": "user", "content": "x"}]}, Unprocessable),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, Unprocessable),
        ({"model": "m", "max_tokens": 5, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]}, Unprocessable),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!!"}}]}]}, BadRequest),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]}, Unprocessable),
        ({"model": "m", "max_tokens": 5, "tools": [{"type": "web_search_20250305", "name": "web_search"}], "messages": [{"role": "user", "content": "x"}]}, Unprocessable),
    ],
)
def test_parse_refuses_bad_bodies(body: dict, error: type) -> None:
    with pytest.raises(error):
        codec.parse_request(body)


# ---------------------------------------------------------------- outbound


def _req(messages: list[Message], **kw) -> ChatRequest:  # type: ignore[no-untyped-def]
    return ChatRequest(model="gpt-4o", messages=messages, **kw)


def test_render_system_merge_and_default_max_tokens() -> None:
    req = _req([
        Message("system", [TextPart("Be brief.")]),
        Message("user", [TextPart("one")]),
        Message("user", [TextPart("two")]),
        Message("assistant", [TextPart("ok")]),
        Message("assistant", [TextPart("more")]),
        Message("user", [TextPart("three")]),
    ], stop=["STOP"], temperature=1.7, top_p=0.5, user="u")
    body = codec.render_request(req, "claude-3-haiku-20240307", 4096)
    assert body["model"] == "claude-3-haiku-20240307"
    assert body["max_tokens"] == 4096
    assert body["system"] == "Be brief."
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert body["stop_sequences"] == ["STOP"]
    assert body["temperature"] == 1.0  # Anthropic's range ends at 1
    assert body["metadata"] == {"user_id": "u"}
    assert "stream" not in body
    assert codec.render_request(_req([Message("user", [TextPart("x")])], max_tokens=77), "m", 4096)["max_tokens"] == 77
    assert codec.render_request(_req([Message("user", [TextPart("x")])]), "m")["max_tokens"] == codec.DEFAULT_MAX_TOKENS


def test_render_tool_history_without_tools_is_still_valid() -> None:
    """003's second call: a history holding tool calls, no tools offered."""
    req = _req([
        Message("user", [TextPart("weather in Paris?")]),
        Message("assistant", [], [ToolCall("call_abc", "get_weather", '{"city": "Paris"}')]),
        Message("tool", [TextPart("sunny")], tool_call_id="call_abc"),
        Message("user", [TextPart("thanks, and?")]),
    ])
    body = codec.render_request(req, "claude", 100)
    assert body["tools"] == [{"name": "get_weather", "description": "A tool used earlier in this conversation.", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "none"}
    assistant, answer = body["messages"][1], body["messages"][2]
    assert assistant["content"] == [{"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"city": "Paris"}}]
    # the tool result and the next user text join one user turn, the result first
    assert answer["content"] == [{"type": "tool_result", "tool_use_id": "call_abc", "content": "sunny"}, {"type": "text", "text": "thanks, and?"}]


@pytest.mark.parametrize(
    "choice, parallel, expected",
    [
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice("auto"), None, {"type": "auto"}),
        (ToolChoice("required"), None, {"type": "any"}),
        (ToolChoice("function", "f"), False, {"type": "tool", "name": "f", "disable_parallel_tool_use": True}),
        (ToolChoice("none"), None, {"type": "none"}),
    ],
)
def test_render_tool_choice(choice: ToolChoice | None, parallel: bool | None, expected: dict | None) -> None:
    req = _req([Message("user", [TextPart("x")])], tools=[Tool("f", "does f", {"type": "object", "properties": {"a": {"type": "string"}}})], tool_choice=choice, parallel_tool_calls=parallel)
    body = codec.render_request(req, "m", 10)
    assert body["tools"] == [{"name": "f", "description": "does f", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}}]
    assert body.get("tool_choice") == expected


def test_render_media_blocks() -> None:
    req = _req([Message("user", [
        TextPart("see"),
        MediaPart("image", "image/jpg", data=PNG),
        MediaPart("image", url="https://example.com/a.png"),
        MediaPart("document", "application/pdf", data=PDF, name="report.pdf"),
        MediaPart("document", "text/csv", data=b"a,b\n1,2"),
        MediaPart("document", url="https://example.com/a.pdf"),
    ])])
    blocks = codec.render_request(req, "m", 10)["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64(PNG)}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    assert blocks[3] == {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)}, "title": "report.pdf"}
    assert blocks[4] == {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a,b\n1,2"}}
    assert blocks[5] == {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    with pytest.raises(BadRequest):
        codec.render_request(_req([Message("user", [MediaPart("audio", "audio/wav", data=b"RIFF")])]), "m", 10)
    with pytest.raises(BadRequest):
        codec.render_request(_req([Message("user", [MediaPart("image", "image/bmp", data=b"BM")])]), "m", 10)


def test_round_trip_through_canonical() -> None:
    body = {
        "model": "m",
        "max_tokens": 64,
        "system": "sys",
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["x"],
        "temperature": 0.5,
    }
    again = codec.render_request(codec.parse_request(body), "m")
    again.pop("metadata", None)
    assert again == body


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize(
    "stop, finish",
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")],
)
def test_parse_response_stop_reasons_and_cache_usage(stop: str, finish: str) -> None:
    body = {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
        "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"x": 1}}],
        "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20, "output_tokens": 7},
    }
    resp = codec.parse_response(body)
    c = resp.choices[0]
    assert c.finish_reason == finish and c.message.text() == "Hi"
    assert c.message.tool_calls == [ToolCall("toolu_9", "f", '{"x":1}')]
    assert resp.usage == Usage(input_tokens=130, output_tokens=7, cached_tokens=100, cache_write_tokens=20)


@pytest.mark.parametrize("finish, stop", [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")])
def test_render_response(finish: str, stop: str) -> None:
    calls = [ToolCall("call_1", "f", '{"a": 2}')] if finish == "tool_calls" else []
    resp = ChatResponse("chatcmpl-1", "gpt-4o", 0, [Choice(0, Message("assistant", [TextPart("hey")] if not calls else [], calls), finish)], Usage(50, 5, cached_tokens=30, cache_write_tokens=10))
    body = codec.render_response(resp, "claude")
    assert body["type"] == "message" and body["role"] == "assistant" and body["model"] == "claude"
    assert body["id"].startswith("msg_")
    assert body["stop_reason"] == stop
    assert body["usage"] == {"input_tokens": 10, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 30, "output_tokens": 5}
    if calls:
        assert body["content"] == [{"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 2}}]
    else:
        assert body["content"] == [{"type": "text", "text": "hey"}]


# ---------------------------------------------------------------- streams

# The event sequence of Anthropic's streaming docs (text, then a tool call).
UPSTREAM = [
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-sonnet", "content": [], "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ", checking."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_01T", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"San"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " Francisco\"}"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 89}},
    {"type": "message_stop"},
]


def test_stream_decoder() -> None:
    d = StreamDecoder()
    events = [e for ev in UPSTREAM for e in d.feed(ev)]
    assert isinstance(events[0], StreamStart) and events[0].id == "msg_1"
    acc = Accumulator()
    for e in events:
        acc.add(e)
    resp = acc.response()
    assert resp.choices[0].message.text() == "Okay, checking."
    assert resp.choices[0].message.tool_calls == [ToolCall("toolu_01T", "get_weather", '{"location": "San Francisco"}')]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert isinstance(events[-1], StreamUsage)
    assert resp.usage == Usage(input_tokens=30, output_tokens=89, cached_tokens=5)
    assert d.stopped


def test_stream_renderer_sequence_and_round_trip() -> None:
    r = EventRenderer(model="claude")
    canonical = [
        StreamStart("chatcmpl-1", "gpt-4o", 0),
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallDelta(0, "call_1", "f", ""),
        ToolCallDelta(0, arguments='{"a":'),
        ToolCallDelta(0, arguments="1}"),
        ToolCallDelta(1, "call_2", "g", "{}"),
        StreamFinish("tool_calls"),
        StreamUsage(Usage(40, 9, cached_tokens=8)),
    ]
    out = [e for ev in canonical for e in r.events(ev)] + r.finish()
    names = [n for n, _ in out]
    assert names == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    assert [d.get("index") for n, d in out if n == "content_block_start"] == [0, 1, 2]
    delta = out[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {"input_tokens": 32, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 8, "output_tokens": 9}
    # and back: decoding our own sequence gives the same answer
    d = StreamDecoder()
    acc = Accumulator()
    for _, data in out:
        for e in d.feed(orjson.loads(orjson.dumps(data))):
            acc.add(e)
    resp = acc.response()
    assert resp.choices[0].message.text() == "Hello"
    assert [(c.id, c.name, c.arguments) for c in resp.choices[0].message.tool_calls] == [("call_1", "f", '{"a":1}'), ("call_2", "g", "{}")]
    assert resp.usage == Usage(40, 9, cached_tokens=8)
    frames = sse(out[:1])
    assert frames.startswith(b"event: message_start\ndata: {") and frames.endswith(b"\n\n")


def test_empty_stream_still_closes_the_message() -> None:
    out = EventRenderer(model="m").finish()
    assert [n for n, _ in out] == ["message_start", "ping", "message_delta", "message_stop"]
    assert out[2][1]["delta"]["stop_reason"] == "end_turn"


def test_stream_error_events() -> None:
    assert isinstance(stream_error({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "p", str), UpstreamOverloaded)
    assert isinstance(stream_error({"type": "error", "error": {"type": "rate_limit_error", "message": "x"}}, "p", str), UpstreamRateLimited)


@pytest.mark.parametrize(
    "exc, kind",
    [(BadRequest("x"), "invalid_request_error"), (Unauthorized("x"), "authentication_error"), (NotFound("x"), "not_found_error"), (UpstreamOverloaded("x"), "overloaded_error"), (UpstreamRateLimited("x"), "rate_limit_error"), (GatewayError("x"), "api_error")],
)
def test_error_body(exc: GatewayError, kind: str) -> None:
    body = codec.error_body(exc, "req_1")
    assert body == {"type": "error", "error": {"type": kind, "message": "x"}, "request_id": "req_1"}
