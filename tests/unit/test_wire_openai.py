"""The OpenAI codec: pure functions, both directions, and the SSE framing under it."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from lmgate.errors import BadRequest, Unprocessable
from lmgate.types import MediaPart, StreamFinish, StreamStart, StreamUsage, TextDelta, ToolCallDelta, Usage
from lmgate.wire import openai as codec
from lmgate.wire.accumulate import Accumulator
from lmgate.wire.sse import decode_sse, encode_sse


def test_parse_and_render_round_trip():
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://x.example/a.png", "detail": "low"}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "temperature": 0.5,
        "max_tokens": 10,
        "stop": "END",
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": True}},
        "logit_bias": {"50256": -100},
    }
    req = codec.parse_chat_request(body)
    assert req.raw is body  # standard shapes: the fast path may forward it
    assert req.stop == ["END"] and req.extra == {"logit_bias": {"50256": -100}}
    assert isinstance(req.messages[1].content[1], MediaPart) and req.messages[1].content[1].detail == "low"
    out = codec.render_chat_request(req, "upstream-model")
    assert out["model"] == "upstream-model"
    assert out["messages"][2]["tool_calls"][0]["id"] == "call_1"
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["response_format"]["json_schema"]["strict"] is True
    assert out["logit_bias"] == {"50256": -100}
    again = codec.parse_chat_request(out)
    assert again.messages == req.messages and again.tools == req.tools


def test_quirks_disable_the_fast_path():
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}, "detail": "auto"}]}]}
    req = codec.parse_chat_request(body)
    assert req.raw is None
    assert req.messages[0].content[0].detail == "auto" and req.messages[0].content[0].data == b"\x00\x00\x00"


def test_file_parts_with_data_uri_and_bare_base64():
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERg=="}},
        {"type": "file", "file": {"filename": "b.pdf", "file_data": "JVBERg=="}},
    ]}]}
    parts = codec.parse_chat_request(body).messages[0].content
    assert [p.kind for p in parts] == ["document", "document"] and parts[0].data == b"%PDF" == parts[1].data


@pytest.mark.parametrize("body, exc", [
    ({"model": "m", "messages": []}, BadRequest),
    ({"model": 5, "messages": [{"role": "user", "content": "x"}]}, Unprocessable),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, Unprocessable),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "video_url"}]}]}, Unprocessable),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, Unprocessable),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, Unprocessable),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}, Unprocessable),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}, BadRequest),
])
def test_bad_requests(body, exc):
    with pytest.raises(exc):
        codec.parse_chat_request(body)


def test_chunk_renderer_synthesises_a_stream_from_events():
    r = codec.ChunkRenderer(include_usage=True)
    frames = b"".join(
        r.render(ev)
        for ev in [
            StreamStart("abc", "claude", 1),
            TextDelta("Hel"),
            TextDelta("lo"),
            ToolCallDelta(0, "call_9", "f", '{"a":'),
            ToolCallDelta(0, None, None, "1}"),
            StreamFinish("tool_calls"),
            StreamUsage(Usage(3, 4), 0.5),
        ]
    )
    chunks = [orjson.loads(line[6:]) for line in frames.split(b"\n\n") if line]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["id"] == "chatcmpl-abc" and c["object"] == "chat.completion.chunk" for c in chunks)
    acc = Accumulator()
    for c in chunks:
        for ev in codec.chunk_events(c):
            acc.add(ev)
    resp = acc.response()
    assert resp.choices[0].message.text() == "Hello"
    assert resp.choices[0].message.tool_calls[0].arguments == '{"a":1}'
    assert resp.choices[0].finish_reason == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "estimated_cost": 0.5}


def test_usage_chunk_hidden_unless_asked():
    assert codec.ChunkRenderer(include_usage=False).render(StreamUsage(Usage(1, 1), 0.1)) == b""


def test_whole_response_render_adds_cost():
    resp = codec.parse_chat_response({"id": "chatcmpl-1", "model": "m", "created": 1, "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    resp.cost_usd = 0.25
    assert codec.render_chat_response(resp)["usage"]["estimated_cost"] == 0.25


async def _collect(chunks):
    async def gen():
        for c in chunks:
            yield c
    return [ev async for ev in decode_sse(gen())]


def test_sse_decoder_handles_split_frames_crlf_comments_and_events():
    events = asyncio.run(_collect([b"data: {\"a\"", b":1}\r\n\r\n: keep-alive\n\nevent: ping\ndata: {}\n\ndata: x\ndata: y\n\n", b"data: [DONE]\n\n"]))
    assert [(e.event, e.data) for e in events] == [(None, b'{"a":1}'), ("ping", b"{}"), (None, b"x\ny"), (None, b"[DONE]")]
    assert encode_sse(b"{}", "ping") == b"event: ping\ndata: {}\n\n"
