"""The Anthropic Messages protocol, exercised with the real `anthropic` SDK."""

from __future__ import annotations

import base64

import anthropic
import pytest
import requests

from lmgate.simulator.testing import RunningSimulator

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.4 fake").decode()


@pytest.fixture(scope="module")
def client(simulator: RunningSimulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=simulator.base_url, api_key="sk-ant-test", max_retries=0)


def test_message_whole_and_stream(client: anthropic.Anthropic, simulator: RunningSimulator) -> None:
    kwargs = dict(model="claude-sonnet-4", max_tokens=200, system="Be brief.",
                  messages=[{"role": "user", "content": "How far away is the moon today?"}])
    whole = client.messages.create(**kwargs)
    assert whole.id.startswith("msg_") and whole.stop_reason == "end_turn"
    assert "How far away is the moon" in whole.content[0].text
    with client.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text
    assert final.usage.output_tokens == whole.usage.output_tokens
    sent = simulator.last_request("/v1/messages")
    assert sent["headers"]["anthropic-version"] and sent["body"]["system"] == "Be brief."


def test_raw_event_sequence(simulator: RunningSimulator) -> None:
    resp = requests.post(simulator.base_url + "/v1/messages",
                         headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                         json={"model": "c", "max_tokens": 50, "stream": True,
                               "messages": [{"role": "user", "content": "hi"}]})
    names = [line[7:] for line in resp.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta",
                          "message_stop"]


def test_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    ask = {"role": "user", "content": "Weather in Paris? [[sim: tool=auto]]"}
    first = client.messages.create(model="c", max_tokens=100, tools=TOOLS, messages=[ask])
    use = first.content[0]
    assert first.stop_reason == "tool_use" and use.type == "tool_use"
    assert use.id.startswith("toolu_") and use.input == {"city": "Paris"}
    second = client.messages.create(model="c", max_tokens=100, tools=TOOLS, messages=[
        ask, {"role": "assistant", "content": [use.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": "Sunny, 24 degrees"}]}])
    assert "Sunny, 24 degrees" in second.content[0].text
    with client.messages.stream(model="c", max_tokens=100, tools=TOOLS, messages=[ask]) as s:
        final = s.get_final_message()
    assert final.content[0].input == {"city": "Paris"} and final.stop_reason == "tool_use"


def test_media_blocks_and_cache_usage(client: anthropic.Anthropic) -> None:
    resp = client.messages.create(model="c", max_tokens=100, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": PDF}},
        {"type": "text", "text": "describe " * 100 + "[[sim: cached=40 cache_write=10]]"}]}])
    assert "1 document and 1 image" in resp.content[0].text
    assert resp.usage.cache_read_input_tokens == 40
    assert resp.usage.cache_creation_input_tokens == 10


def test_count_tokens(client: anthropic.Anthropic) -> None:
    count = client.messages.count_tokens(model="c", messages=[{"role": "user", "content": "x" * 400}])
    assert count.input_tokens == 100


@pytest.mark.parametrize("messages, fragment", [
    ([{"role": "assistant", "content": "hi"}], 'first message must use the "user" role'),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
     "roles must alternate"),
    ([{"role": "system", "content": "a"}, {"role": "user", "content": "b"}],
     "top-level `system` parameter"),
    ([{"role": "user", "content": [{"type": "text", "text": ""}]}], "must be non-empty"),
    ([{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": PDF}}]}], "valid png image"),
])
def test_malformed_messages_get_anthropic_400(client: anthropic.Anthropic, messages, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="c", max_tokens=10, messages=messages)
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert fragment in info.value.body["error"]["message"]


def test_tool_blocks_need_tools_and_matching_ids(client: anthropic.Anthropic) -> None:
    history = [{"role": "user", "content": "w?"},
               {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                  "name": "get_weather", "input": {}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                             "content": "rain"}]}]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="c", max_tokens=10, messages=history)
    assert "must define tools" in info.value.body["error"]["message"]
    history[2]["content"][0]["tool_use_id"] = "toolu_2"
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="c", max_tokens=10, tools=TOOLS, messages=history)
    assert "unexpected `tool_use_id`" in info.value.body["error"]["message"]


def test_headers_and_required_fields(simulator: RunningSimulator) -> None:
    url = simulator.base_url + "/v1/messages"
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    no_key = requests.post(url, json=body, headers={"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "authentication_error" and no_key.json()["type"] == "error"
    no_version = requests.post(url, json=body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    no_max = requests.post(url, json={**body, "max_tokens": None},
                           headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert no_max.json()["error"]["message"] == "max_tokens: Field required"


def test_status_knobs_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="c", max_tokens=5, messages=[
            {"role": "user", "content": "x [[sim: status=429 retry_after=4]]"}])
    assert info.value.response.headers["retry-after"] == "4"
    assert info.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model="c", max_tokens=5, messages=[
            {"role": "user", "content": "x [[sim: status=529]]"}])
    assert info.value.body["error"]["type"] == "overloaded_error"


def test_max_tokens_and_refusal(client: anthropic.Anthropic) -> None:
    capped = client.messages.create(model="c", max_tokens=2, messages=[
        {"role": "user", "content": "a question with words"}])
    assert capped.stop_reason == "max_tokens" and capped.usage.output_tokens == 2
    refused = client.messages.create(model="c", max_tokens=50, messages=[
        {"role": "user", "content": "x [[sim: finish=content_filter]]"}])
    assert refused.stop_reason == "refusal"
