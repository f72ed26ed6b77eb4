"""The Gemini codecs: requests and answers both ways, streams, embeddings, schemas, errors (pure)."""

from __future__ import annotations

import orjson
import pytest

from lmgate.errors import BadRequest
from lmgate.providers.gemini import parse_error
from lmgate.providers.http import map_failure
from lmgate.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    MediaPart,
    Message,
    ResponseFormat,
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
from lmgate.wire import gemini as codec
from lmgate.wire import gemini_embed as embed
from lmgate.wire import gemini_response as answers
from lmgate.wire.accumulate import Accumulator
from lmgate.wire.gemini_schema import from_gemini_schema, to_gemini_schema
from lmgate.wire.gemini_stream import ChunkRenderer, StreamDecoder, decode_chunk

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16

BODY = {
    "systemInstruction": {"parts": [{"text": "be brief"}]},
    "contents": [
        {"role": "user", "parts": [{"text": "weather?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgoAAAAA"}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}]},
    ],
    "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "d", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}, {"googleSearch": {}}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
    "generationConfig": {"temperature": 0.2, "topP": 0.9, "topK": 40, "maxOutputTokens": 100, "stopSequences": ["END"], "candidateCount": 1, "thinkingConfig": {"thinkingBudget": 0}},
    "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
}


def test_parse_generate_request_maps_every_field():
    req = codec.parse_generate_request(BODY, "gemini-2.5-flash")
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    assert req.messages[0].text() == "be brief"
    img = req.messages[1].content[1]
    assert isinstance(img, MediaPart) and img.kind == "image" and img.media_type == "image/png"
    call = req.messages[2].tool_calls[0]
    assert call.name == "get_weather" and orjson.loads(call.arguments) == {"city": "Paris"}
    assert req.messages[3].tool_call_id == call.id and req.messages[3].name == "get_weather"
    assert orjson.loads(req.messages[3].text()) == {"temp": 21}
    assert req.tools == [Tool("get_weather", "d", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})]
    assert req.tool_choice == ToolChoice("function", "get_weather")
    assert (req.temperature, req.top_p, req.top_k, req.max_tokens, req.stop, req.n) == (0.2, 0.9, 40, 100, ["END"], 1)
    assert req.extra["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 0}}
    assert req.extra["tools"] == [{"googleSearch": {}}] and "safetySettings" in req.extra
    assert req.raw is BODY and req.raw_format == "gemini"


def test_gemini_round_trip_keeps_what_gemini_needs():
    req = codec.parse_generate_request(BODY, "m")
    out = codec.render_generate_request(req)
    assert out["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert [c["role"] for c in out["contents"]] == ["user", "model", "user"]
    fc = out["contents"][1]["parts"][0]["functionCall"]
    fr = out["contents"][2]["parts"][0]["functionResponse"]
    assert fc["id"] == fr["id"] and fr == {"name": "get_weather", "response": {"temp": 21}, "id": fc["id"]}
    assert out["tools"][0]["functionDeclarations"][0]["parameters"]["type"] == "OBJECT"
    assert out["tools"][1] == {"googleSearch": {}}
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert out["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0} and out["generationConfig"]["maxOutputTokens"] == 100
    assert out["safetySettings"] == BODY["safetySettings"]


def test_render_from_openai_shapes():
    req = ChatRequest(
        model="m",
        messages=[
            Message("system", [TextPart("sys")]),
            Message("user", [TextPart("hi"), MediaPart("image", media_type=None, data=PNG), MediaPart("document", url="https://x.example/a.pdf")]),
            Message("assistant", [], [ToolCall("call_a", "f", '{"x": 1}'), ToolCall("call_b", "g", "")]),
            Message("tool", [TextPart("plain text")], tool_call_id="call_a"),
            Message("tool", [TextPart('["list"]')], tool_call_id="call_b"),
            Message("user", [TextPart("and?")]),
        ],
        tools=[Tool("f", None, {"type": "object", "properties": {"x": {"type": ["integer", "null"]}}}), Tool("g", "no args", {"type": "object", "properties": {}})],
        tool_choice=ToolChoice("required"),
        response_format=ResponseFormat("json_schema", schema={"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}),
        n=2,
        seed=7,
    )
    out = codec.render_generate_request(req)
    assert [c["role"] for c in out["contents"]] == ["user", "model", "user"]
    user = out["contents"][0]["parts"]
    assert user[1] == {"inlineData": {"mimeType": "image/png", "data": codec.b64encode(PNG)}}
    assert user[2] == {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x.example/a.pdf"}}
    results = out["contents"][2]["parts"]  # both results and the next user text share one turn
    assert results[0]["functionResponse"] == {"name": "f", "response": {"output": "plain text"}, "id": "call_a"}
    assert results[1]["functionResponse"]["response"] == {"output": ["list"]}
    assert results[2] == {"text": "and?"}
    decls = out["tools"][0]["functionDeclarations"]
    assert decls[0]["parameters"]["properties"]["x"] == {"type": "INTEGER", "nullable": True}
    assert "parameters" not in decls[1]  # Gemini refuses OBJECT without properties
    assert out["toolConfig"]["functionCallingConfig"] == {"mode": "ANY"}
    gen = out["generationConfig"]
    assert gen["responseMimeType"] == "application/json" and "additionalProperties" not in gen["responseSchema"]
    assert gen["candidateCount"] == 2 and gen["seed"] == 7


def test_tool_result_without_a_known_call_is_refused():
    req = ChatRequest(model="m", messages=[Message("user", [TextPart("x")]), Message("tool", [TextPart("r")], tool_call_id="nope")])
    with pytest.raises(BadRequest):
        codec.render_generate_request(req)


def test_results_without_ids_pair_with_calls_by_name_and_order():
    body = {"contents": [
        {"role": "user", "parts": [{"text": "q"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"i": 1}}}, {"functionCall": {"name": "f", "args": {"i": 2}}}, {"functionCall": {"name": "g", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}, {"functionResponse": {"name": "f", "response": {"r": 1}}}, {"functionResponse": {"name": "f", "response": {"r": 2}}}]},
    ]}
    req = codec.parse_generate_request(body, "m")
    calls = req.messages[1].tool_calls
    results = req.messages[2:]
    assert [r.tool_call_id for r in results] == [calls[2].id, calls[0].id, calls[1].id]
    assert len({c.id for c in calls}) == 3
    assert codec.parse_generate_request(body, "m").messages[1].tool_calls == calls  # deterministic


def test_snake_case_fields_are_accepted():
    body = {"contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "application/pdf", "data": "JVBERg=="}}]}],
            "system_instruction": {"parts": [{"text": "s"}]}, "generation_config": {"max_output_tokens": 5}}
    req = codec.parse_generate_request(body, "m")
    assert req.messages[0].text() == "s" and req.max_tokens == 5
    assert req.messages[1].content[0].kind == "document"


def test_bad_requests():
    with pytest.raises(BadRequest):
        codec.parse_generate_request({"contents": []}, "m")
    with pytest.raises(BadRequest):
        codec.parse_generate_request({"contents": [{"role": "bot", "parts": [{"text": "x"}]}]}, "m")
    with pytest.raises(BadRequest):
        codec.parse_generate_request({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]}, "m")


def test_parse_response_mints_ids_into_the_body_and_maps_finish_and_usage():
    body = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "thinking", "thought": True}, {"text": "ok "}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 3, "cachedContentTokenCount": 4, "toolUsePromptTokenCount": 2, "totalTokenCount": 20},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1",
    }
    resp = answers.parse_generate_response(body)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.text() == "ok "
    call = choice.message.tool_calls[0]
    assert body["candidates"][0]["content"]["parts"][2]["functionCall"]["id"] == call.id
    assert resp.usage == Usage(input_tokens=12, output_tokens=8, cached_tokens=4, reasoning_tokens=3)
    assert resp.raw is body and resp.id == "r1" and resp.model == "gemini-2.5-flash"


@pytest.mark.parametrize(
    "reason,expected",
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
     ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"), ("MALFORMED_FUNCTION_CALL", "error"), ("OTHER", "stop")],
)
def test_finish_reasons(reason, expected):
    body = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    assert answers.parse_generate_response(body).choices[0].finish_reason == expected


def test_blocked_prompt():
    assert answers.blocked_reason({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {}}) == "PROHIBITED_CONTENT"
    assert answers.blocked_reason({"candidates": [{}], "promptFeedback": {"blockReason": "SAFETY"}}) is None


def test_render_response_for_the_gemini_surface():
    resp = ChatResponse("id1", "gpt-4o", 0, [Choice(0, Message("assistant", [], [ToolCall("call_1", "f", '{"a": 1}')]), "tool_calls")], Usage(7, 5, reasoning_tokens=2))
    out = answers.render_generate_response(resp, "gpt-4o")
    cand = out["candidates"][0]
    assert cand["content"]["parts"] == [{"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}}]
    assert cand["finishReason"] == "STOP"
    assert out["usageMetadata"] == {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 12, "thoughtsTokenCount": 2}


def test_stream_decoder_numbers_calls_and_keeps_the_last_usage():
    d = StreamDecoder()
    events = d.events({"candidates": [{"content": {"parts": [{"text": "a"}]}}], "usageMetadata": {"promptTokenCount": 3}})
    assert events == [TextDelta("a", 0)] and not d.finished
    chunk = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}, {"functionCall": {"name": "g", "args": {"x": 1}, "id": "given"}}]}, "finishReason": "STOP"}],
             "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}}
    events = d.events(chunk)
    assert [type(e) for e in events] == [ToolCallDelta, ToolCallDelta, StreamFinish]
    assert (events[0].call_index, events[1].call_index, events[1].id) == (0, 1, "given")
    assert chunk["candidates"][0]["content"]["parts"][0]["functionCall"]["id"] == events[0].id
    assert events[2].finish_reason == "tool_calls" and d.finished
    assert d.usage == Usage(3, 4)
    assert decode_chunk(orjson.dumps(chunk))[0].id == events[0].id  # ids travel in the data


def _render_all(renderer: ChunkRenderer, events: list) -> bytes:
    return b"".join(renderer.render(e) for e in events) + renderer.close()


def test_chunk_renderer_sse_and_array_framing():
    events = [StreamStart("r", "m", 0), TextDelta("Hel"), TextDelta("lo"), ToolCallDelta(0, "c1", "f", '{"a"'), ToolCallDelta(0, None, None, ": 1}"),
              StreamFinish("tool_calls"), StreamUsage(Usage(3, 4))]
    sse = _render_all(ChunkRenderer(True, "m"), events)
    frames = [orjson.loads(f[len(b"data: "):]) for f in sse.split(b"\r\n\r\n") if f]
    assert [f["candidates"][0]["content"]["parts"][0].get("text") for f in frames[:2]] == ["Hel", "lo"]
    last = frames[-1]
    assert last["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "f", "args": {"a": 1}, "id": "c1"}}]
    assert last["candidates"][0]["finishReason"] == "STOP" and last["usageMetadata"]["candidatesTokenCount"] == 4
    array = orjson.loads(_render_all(ChunkRenderer(False, "m"), events))
    assert len(array) == 3 and array[2] == last
    assert orjson.loads(ChunkRenderer(False, "m").close()) == []


def test_streamed_events_fold_into_the_same_answer():
    acc = Accumulator()
    d = StreamDecoder()
    for chunk in ({"candidates": [{"content": {"parts": [{"text": "Hi "}]}}]}, {"candidates": [{"content": {"parts": [{"text": "there"}]}, "finishReason": "MAX_TOKENS"}]}):
        for ev in d.events(chunk):
            acc.add(ev)
    resp = acc.response()
    assert resp.choices[0].message.text() == "Hi there" and resp.choices[0].finish_reason == "length"


def test_schema_conversion():
    schema = {
        "$defs": {"Loc": {"type": "object", "properties": {"city": {"type": "string", "enum": ["a", "b"]}}, "required": ["city"]}},
        "type": "object",
        "properties": {"loc": {"$ref": "#/$defs/Loc"}, "n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}, "k": {"const": "x"}},
        "required": ["loc", "missing"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    }
    out = to_gemini_schema(schema)
    assert out["type"] == "OBJECT" and out["required"] == ["loc"]
    assert out["properties"]["loc"]["properties"]["city"] == {"type": "STRING", "enum": ["a", "b"], "format": "enum"}
    assert out["properties"]["n"] == {"type": "INTEGER", "default": None, "nullable": True}
    assert out["properties"]["k"] == {"enum": ["x"], "type": "STRING"}
    assert "$schema" not in out and "additionalProperties" not in out
    back = from_gemini_schema({"type": "OBJECT", "properties": {"a": {"type": "STRING", "nullable": True}, "b": {"type": "ARRAY", "items": {"type": "NUMBER"}, "minItems": "1"}}})
    assert back == {"type": "object", "properties": {"a": {"type": ["string", "null"]}, "b": {"type": "array", "items": {"type": "number"}, "minItems": 1}}}


def test_embedding_codecs():
    req = embed.parse_embed_request({"requests": [{"model": "models/e", "content": {"parts": [{"text": "a"}]}, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 8},
                                                  {"content": {"parts": [{"text": "b"}]}}]}, "e", batch=True)
    assert req.inputs == ["a", "b"] and req.input_type == "search_query" and req.dimensions == 8
    body = embed.render_batch_request(EmbeddingRequest("e", ["x"], input_type="search_document", dimensions=4), "e", ["x"])
    assert body == {"requests": [{"model": "models/e", "content": {"parts": [{"text": "x"}]}, "taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 4}]}
    pred = embed.render_predict_request(EmbeddingRequest("e", ["x"], input_type="clustering"), ["x"])
    assert pred == {"instances": [{"content": "x", "task_type": "CLUSTERING"}]}
    vectors, usage = embed.parse_predict_response({"predictions": [{"embeddings": {"values": [0.1], "statistics": {"token_count": 3}}}], "metadata": {"billableCharacterCount": 9}})
    assert vectors == [[0.1]] and usage == Usage(input_tokens=3, input_chars=9)


def _mapped(status: int, body: dict):
    return map_failure(parse_error(status, orjson.dumps(body), {}), "g", lambda s: s)


@pytest.mark.parametrize(
    "status,body,code,http",
    [
        (429, {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
                         "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}, "upstream_rate_limited", 429),
        (401, {"error": {"code": 401, "message": "x", "status": "UNAUTHENTICATED"}}, "upstream_auth_error", 502),
        (403, {"error": {"code": 403, "message": "x", "status": "PERMISSION_DENIED"}}, "upstream_auth_error", 502),
        (400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT",
                         "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}, "upstream_auth_error", 502),
        (400, {"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                         "status": "INVALID_ARGUMENT"}}, "context_length_exceeded", 400),
        (400, {"error": {"code": 400, "message": "bad field", "status": "INVALID_ARGUMENT"}}, "bad_request", 400),
        (503, {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}, "upstream_overloaded", 503),
        (504, {"error": {"code": 504, "message": "Deadline expired", "status": "DEADLINE_EXCEEDED"}}, "upstream_timeout", 504),
        (500, [{"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}], "upstream_error", 502),
    ],
)
def test_google_errors_are_mapped(status, body, code, http):
    err = _mapped(status, body)
    assert (err.code, err.status) == (code, http)
    if code == "upstream_rate_limited":
        assert err.retry_after == 7
