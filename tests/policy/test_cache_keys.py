"""Cache keys: the same question through any protocol gives the same key; what changes the answer
changes the key; what does not (stream flag, key, ids) does not."""

from __future__ import annotations

import copy

from lmgate.policy.cache.keys import chat_key, context_key, embedding_key
from lmgate.types import ChatRequest, EmbeddingRequest, MediaPart, Message, TextPart, Tool, ToolCall
from lmgate.wire import anthropic, gemini
from lmgate.wire import openai as openai_wire

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _openai(**more):  # type: ignore[no-untyped-def]
    body = {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}], "max_tokens": 100, "temperature": 0.5}
    body.update(more)
    return openai_wire.parse_chat_request(body)


def test_same_question_through_three_protocols_has_one_key():
    ra = anthropic.parse_request({"model": "m", "system": "be brief", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 100, "temperature": 0.5})
    rg = gemini.parse_generate_request(
        {"systemInstruction": {"parts": [{"text": "be brief"}]}, "contents": [{"role": "user", "parts": [{"text": "hi there"}]}],
         "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5}},
        "m",
    )
    assert chat_key(_openai()) == chat_key(ra) == chat_key(rg)


def test_never_in_the_key_stream_user_ids_and_neutral_fields():
    base = chat_key(_openai())
    assert chat_key(_openai(stream=True, stream_options={"include_usage": True})) == base
    assert chat_key(_openai(user="u-1", metadata={"a": 1})) == base
    assert chat_key(_openai(temperature=0.5, n=1)) == base  # n=1 is the default
    r = _openai()
    r.raw, r.raw_bytes = None, None
    assert chat_key(r) == base


def test_what_changes_the_answer_changes_the_key():
    base = chat_key(_openai())
    assert chat_key(_openai(temperature=0.6)) != base
    assert chat_key(_openai(max_tokens=101)) != base
    assert chat_key(_openai(model="other")) != base
    assert chat_key(_openai(seed=1)) != base
    assert chat_key(_openai(logprobs=True)) != base  # an unmodelled field that changes the answer
    assert chat_key(_openai(response_format={"type": "json_object"})) != base
    assert chat_key(_openai(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])) != base
    assert chat_key(_openai(), scope="key1:") != base


def test_integer_and_float_parameters_are_one_key():
    assert chat_key(_openai(temperature=1)) == chat_key(_openai(temperature=1.0))


def test_media_bytes_are_hashed_into_the_key():
    def req(data: bytes) -> ChatRequest:
        return ChatRequest("m", [Message("user", [TextPart("what is this"), MediaPart("image", "image/png", data=data)])])

    assert chat_key(req(PNG)) == chat_key(req(bytes(PNG)))
    assert chat_key(req(PNG)) != chat_key(req(PNG + b"\x01"))


def test_tool_call_ids_are_not_in_the_key():
    def req(call_id: str) -> ChatRequest:
        return ChatRequest(
            "m",
            [
                Message("user", [TextPart("weather?")]),
                Message("assistant", [], [ToolCall(call_id, "weather", '{"city":"Bern"}')]),
                Message("tool", [TextPart("sunny")], tool_call_id=call_id, name="weather"),
            ],
            tools=[Tool("weather", None, {"type": "object"})],
        )

    assert chat_key(req("call_1")) == chat_key(req("toolu_abc"))


def test_tool_parameter_key_order_does_not_matter():
    a = _openai(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {}, "y": {}}}}}])
    b = _openai(tools=[{"type": "function", "function": {"name": "f", "parameters": {"properties": {"y": {}, "x": {}}, "type": "object"}}}])
    assert chat_key(a) == chat_key(b)


def test_context_key_leaves_out_only_the_last_user_text():
    a = _openai()
    b = copy.deepcopy(a)
    b.messages[-1].content[0].text = "hello there"
    ca, cb = context_key(a), context_key(b)
    assert ca is not None and cb is not None
    assert ca[0] == cb[0] and (ca[1], cb[1]) == ("hi there", "hello there")
    c = _openai(temperature=0.9)
    assert context_key(c)[0] != ca[0]  # type: ignore[index]
    tool_last = ChatRequest("m", [Message("tool", [TextPart("x")], tool_call_id="1")])
    assert context_key(tool_last) is None


def test_embedding_keys():
    a = EmbeddingRequest("e", ["a", "b"])
    assert embedding_key(a) == embedding_key(EmbeddingRequest("e", ["a", "b"], encoding_format="base64"))
    assert embedding_key(a) != embedding_key(EmbeddingRequest("e", ["b", "a"]))
    assert embedding_key(a) != embedding_key(EmbeddingRequest("e", ["a", "b"], dimensions=8))
