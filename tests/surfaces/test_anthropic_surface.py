"""The Anthropic surface with the real anthropic SDK, served by an OpenAI-protocol deployment, an
Anthropic one and Bedrock ones (any surface to any provider), checked on both sides."""

from __future__ import annotations

import base64
from typing import Iterator

import anthropic
import httpx
import pytest

from lmgate.simulator.answer import png_bytes
from lmgate.simulator.testing import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, RunningSimulator, start_simulator
from lmgate.testing import RunningGateway, start_gateway

KEY = "sk-gw-anthropic-surface"
LIMITED = "sk-gw-anthropic-limited"
PNG = png_bytes("surface")
PDF = b"%PDF-1.4\n1 0 obj <</Type/Page>> endobj\n%%EOF"

CONFIG = """
providers:
  oai: {{type: openai, base_url: "{sim}/v1", api_key: sk-oai-upstream-0123456789}}
  anth: {{type: anthropic, base_url: "{sim}", api_key: sk-ant-upstream-0123456789}}
  aws: {{type: bedrock, base_url: "{sim}", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
  anth-529: {{type: anthropic, base_url: "{sim}/_sim/status=529", api_key: sk-ant-upstream-0123456789}}
  oai-cut: {{type: openai, base_url: "{sim}/_sim/cut_after=3/v1", api_key: sk-oai-upstream-0123456789}}
models:
  - name: gpt-4o
    deployments: [{{provider: oai, model: gpt-4o}}]
    modalities: [text, image, document]
  - name: claude
    deployments: [{{provider: anth, model: claude-3-haiku-20240307}}]
    modalities: [text, image, document]
  - name: bclaude
    deployments: [{{provider: aws, model: anthropic.claude-3-haiku-20240307-v1:0}}]
  - name: nova
    deployments: [{{provider: aws, model: us.amazon.nova-lite-v1:0}}]
  - name: busy
    deployments: [{{provider: anth-529, model: claude-3-haiku-20240307}}]
  - name: cut
    deployments: [{{provider: oai-cut, model: gpt-4o}}]
keys:
  - {{key: {key}, name: main}}
  - {{key: {limited}, name: limited, models: [nova]}}
router: {{retries: 0, backoff_s: 0}}
"""
MODELS = ["gpt-4o", "claude", "bclaude", "nova"]
UPSTREAM_PATH = {"gpt-4o": "/v1/chat/completions", "claude": "/v1/messages", "bclaude": "/invoke", "nova": "/converse"}
TOOLS = [{"name": "get_weather", "description": "Weather of a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    s = start_simulator()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(sim: RunningSimulator) -> Iterator[RunningGateway]:
    g = start_gateway(CONFIG.format(sim=sim.base_url, ak=AWS_ACCESS_KEY_ID, sk=AWS_SECRET_ACCESS_KEY, key=KEY, limited=LIMITED), steps=[])
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base_url, api_key=KEY, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_whole_answer(client: anthropic.Anthropic, sim: RunningSimulator, model: str) -> None:
    msg = client.messages.create(model=model, max_tokens=256, system="Answer briefly.", messages=[{"role": "user", "content": "Hello there"}])
    assert msg.type == "message" and msg.role == "assistant"
    assert 'you said "Hello there"' in msg.content[0].text
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    sent = sim.last_request()
    assert sent["path"].endswith(UPSTREAM_PATH[model])
    body = sent["body"]
    if model == "gpt-4o":
        assert body["messages"][0] == {"role": "system", "content": "Answer briefly."} and body["max_tokens"] == 256
    elif model == "nova":
        assert body["system"] == [{"text": "Answer briefly."}] and body["inferenceConfig"]["maxTokens"] == 256
    else:
        assert body["system"] == "Answer briefly." and body["max_tokens"] == 256


@pytest.mark.parametrize("model", MODELS)
def test_stream(client: anthropic.Anthropic, model: str) -> None:
    whole = client.messages.create(model=model, max_tokens=256, messages=[{"role": "user", "content": "stream please"}])
    with client.messages.stream(model=model, max_tokens=256, messages=[{"role": "user", "content": "stream please"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text == final.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == whole.usage.input_tokens > 0
    assert final.usage.output_tokens == whole.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tools_round_trip(client: anthropic.Anthropic, model: str, stream: bool) -> None:
    ask = [{"role": "user", "content": "Weather in Paris? [[sim: tool=get_weather]]"}]
    if stream:
        with client.messages.stream(model=model, max_tokens=256, tools=TOOLS, messages=ask) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=256, tools=TOOLS, tool_choice={"type": "any"}, messages=ask)
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    answer = client.messages.create(
        model=model,
        max_tokens=256,
        tools=TOOLS,
        messages=[*ask, {"role": "assistant", "content": first.content}, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]}],
    )
    assert "the tool get_weather returned: sunny, 21 C" in answer.content[0].text


def test_images_and_documents_reach_an_openai_upstream(client: anthropic.Anthropic, sim: RunningSimulator) -> None:
    msg = client.messages.create(model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(PDF).decode()}, "title": "spec.pdf"},
        {"type": "text", "text": "Describe these."},
    ]}])
    assert "image" in msg.content[0].text
    parts = sim.last_request("/v1/chat/completions")["body"]["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
    assert parts[1]["type"] == "file" and parts[1]["file"]["filename"] == "spec.pdf"


def test_raw_event_sequence(gw: RunningGateway) -> None:
    """The SSE frames themselves: `event:` lines, and the documented order."""
    body = {"model": "gpt-4o", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", gw.base_url + "/v1/messages", json=body, headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert all(f.startswith("event: ") and "\ndata: {" in f for f in frames)
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_count_tokens(client: anthropic.Anthropic) -> None:
    small = client.messages.count_tokens(model="nova", messages=[{"role": "user", "content": "hi"}])
    big = client.messages.count_tokens(model="nova", system="sys " * 50, tools=TOOLS, messages=[{"role": "user", "content": "hi " * 200}])
    assert 0 < small.input_tokens < big.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "hi"}])


def test_bearer_key_and_key_allowlist(gw: RunningGateway) -> None:
    limited = anthropic.Anthropic(base_url=gw.base_url, auth_token=LIMITED, max_retries=0)
    assert limited.messages.create(model="nova", max_tokens=20, messages=[{"role": "user", "content": "hi"}]).content
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        limited.messages.create(model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["error"]["type"] == "permission_error"


def test_errors_in_anthropic_shape(gw: RunningGateway, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError) as auth:
        anthropic.Anthropic(base_url=gw.base_url, api_key="sk-wrong-key-123", max_retries=0).messages.create(model="nova", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert auth.value.body["type"] == "error" and auth.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["error"]["type"] == "not_found_error"
    r = httpx.post(gw.base_url + "/v1/messages", json={"model": "nova", "messages": [{"role": "user", "content": "hi"}]}, headers={"x-api-key": KEY})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in r.json()["error"]["message"]
    with pytest.raises(anthropic.InternalServerError) as busy:
        client.messages.create(model="busy", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert busy.value.status_code == 503 and busy.value.body["error"]["type"] == "overloaded_error"
    r = httpx.post(gw.base_url + "/v1/messages/nope", json={}, headers={"x-api-key": KEY})
    assert r.status_code == 404 and r.json()["type"] == "error"


def test_a_broken_stream_ends_with_an_error_event(gw: RunningGateway) -> None:
    body = {"model": "cut", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "a long answer please"}]}
    with httpx.stream("POST", gw.base_url + "/v1/messages", json=body, headers={"x-api-key": KEY}) as r:
        raw = r.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    assert frames[-1].startswith("event: error\ndata: ")
    assert "message_stop" not in raw
