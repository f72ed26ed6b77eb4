"""The anthropic provider through the gateway: the openai SDK in front, the simulator's Anthropic
Messages API behind (which checks headers, alternation, tool blocks and media as Anthropic does)."""

from __future__ import annotations

import base64
from typing import Iterator

import openai
import pytest

from lmgate.errors import ContextLengthExceeded
from lmgate.providers.anthropic import parse_error
from lmgate.providers.http import map_failure
from lmgate.simulator.answer import png_bytes
from lmgate.simulator.testing import RunningSimulator, start_simulator
from lmgate.testing import RunningGateway, start_gateway

KEY = "sk-gw-anthropic-provider"
UPSTREAM_KEY = "sk-ant-upstream-secret-0123456789"
PNG = png_bytes("anthropic")
PDF = b"%PDF-1.4\n1 0 obj <</Type/Page>> endobj\n%%EOF"

CONFIG = """
providers:
  anth: {{type: anthropic, base_url: "{sim}", api_key: "{secret}"}}
  anth-v1: {{type: anthropic, base_url: "{sim}/v1", api_key: "{secret}", api_version: "2024-01-01", headers: {{anthropic-beta: "tools-2024"}}}}
  anth-badkey: {{type: anthropic, base_url: "{sim}", api_key: "sk-ant-invalid-key-0123456789"}}
  anth-429: {{type: anthropic, base_url: "{sim}/_sim/status=429,retry_after=7", api_key: "{secret}"}}
  anth-529: {{type: anthropic, base_url: "{sim}/_sim/status=529", api_key: "{secret}"}}
  anth-500: {{type: anthropic, base_url: "{sim}/_sim/status=500", api_key: "{secret}"}}
  anth-cut: {{type: anthropic, base_url: "{sim}/_sim/cut_after=4", api_key: "{secret}"}}
models:
  - name: claude
    deployments: [{{provider: anth, model: claude-3-haiku-20240307}}]
    modalities: [text, image, document]
  - name: claude-v1
    deployments: [{{provider: anth-v1, model: claude-3-5-sonnet-20240620}}]
  - name: claude-badkey
    deployments: [{{provider: anth-badkey, model: claude-3-haiku-20240307}}]
  - name: claude-429
    deployments: [{{provider: anth-429, model: claude-3-haiku-20240307}}]
  - name: claude-529
    deployments: [{{provider: anth-529, model: claude-3-haiku-20240307}}]
  - name: claude-500
    deployments: [{{provider: anth-500, model: claude-3-haiku-20240307}}]
  - name: claude-cut
    deployments: [{{provider: anth-cut, model: claude-3-haiku-20240307}}]
keys:
  - {{key: {key}, name: main}}
router: {{retries: 0, backoff_s: 0}}
"""

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    s = start_simulator()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(sim: RunningSimulator) -> Iterator[RunningGateway]:
    g = start_gateway(CONFIG.format(sim=sim.base_url, secret=UPSTREAM_KEY, key=KEY), steps=[])  # no cache: every call reaches the simulator
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)


def upstream(sim: RunningSimulator) -> dict:
    return sim.last_request("/v1/messages")


def test_text_and_system(client: openai.OpenAI, sim: RunningSimulator) -> None:
    r = client.chat.completions.create(model="claude", messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hello there"}])
    assert 'you said "Hello there"' in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.estimated_cost > 0
    sent = upstream(sim)
    assert sent["headers"]["x-api-key"] == UPSTREAM_KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    body = sent["body"]
    assert body["model"] == "claude-3-haiku-20240307"
    assert body["system"] == "Answer briefly."
    assert body["max_tokens"] == 4096  # the catalog's output limit for Claude 3 Haiku
    assert body["messages"] == [{"role": "user", "content": "Hello there"}]


def test_base_url_with_v1_version_and_extra_headers(client: openai.OpenAI, sim: RunningSimulator) -> None:
    client.chat.completions.create(model="claude-v1", messages=[{"role": "user", "content": "hi"}], max_tokens=50)
    sent = upstream(sim)
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["anthropic-version"] == "2024-01-01"
    assert sent["headers"]["anthropic-beta"] == "tools-2024"
    assert sent["body"]["max_tokens"] == 50


def test_multi_turn_merges_consecutive_roles(client: openai.OpenAI, sim: RunningSimulator) -> None:
    r = client.chat.completions.create(
        model="claude",
        messages=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "noted"},
            {"role": "assistant", "content": "really"},
            {"role": "user", "content": "third"},
        ],
    )
    assert 'you said "third"' in r.choices[0].message.content
    assert [m["role"] for m in upstream(sim)["body"]["messages"]] == ["user", "assistant", "user"]


def test_image_and_document(client: openai.OpenAI, sim: RunningSimulator) -> None:
    data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    pdf = "data:application/pdf;base64," + base64.b64encode(PDF).decode()
    r = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": data_uri}},
            {"type": "file", "file": {"filename": "spec.pdf", "file_data": pdf}},
        ]}],
    )
    assert "1 document and 1 image" in r.choices[0].message.content
    blocks = upstream(sim)["body"]["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}}
    assert blocks[2]["type"] == "document" and blocks[2]["source"]["media_type"] == "application/pdf" and blocks[2]["title"] == "spec.pdf"


def test_tools_round_trip(client: openai.OpenAI, sim: RunningSimulator) -> None:
    first = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Weather in Paris? [[sim: tool=get_weather]]"}], tools=TOOLS, tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"Paris"}'
    assert call.id.startswith("toolu_")
    sent = upstream(sim)["body"]
    assert sent["tools"][0]["input_schema"]["required"] == ["city"] and sent["tool_choice"] == {"type": "any"}
    # the second call holds the tool blocks and, as 003 does, offers no tools
    history = [
        {"role": "user", "content": "Weather in Paris? [[sim: tool=get_weather]]"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = client.chat.completions.create(model="claude", messages=history)
    assert "the tool get_weather returned: sunny, 21 C" in second.choices[0].message.content
    sent = upstream(sim)["body"]
    assert sent["messages"][1]["content"][0] == {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}}
    assert sent["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"}
    assert sent["tool_choice"] == {"type": "none"}


def test_stream_text_and_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "stream me"}])
    chunks = list(client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "stream me"}], stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert usage.prompt_tokens == whole.usage.prompt_tokens and usage.completion_tokens == whole.usage.completion_tokens > 0


def test_stream_tool_call(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "weather [[sim: tool=get_weather]]"}], tools=TOOLS, stream=True, stream_options={"include_usage": True}))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id.startswith("toolu_") and calls[0].function.name == "get_weather"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"city":"Paris"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_length_finish(client: openai.OpenAI, stream: bool) -> None:
    messages = [{"role": "user", "content": "tell me a long story"}]
    if stream:
        chunks = list(client.chat.completions.create(model="claude", messages=messages, max_tokens=3, stream=True))
        reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        reasons = [client.chat.completions.create(model="claude", messages=messages, max_tokens=3).choices[0].finish_reason]
    assert reasons == ["length"]


def test_refusal_is_content_filter(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "[[sim: finish=content_filter]] hm"}])
    assert r.choices[0].finish_reason == "content_filter"


def test_cache_tokens_reach_usage_and_cost(client: openai.OpenAI) -> None:
    prompt = "word " * 200 + "[[sim: cached=100 cache_write=20]]"
    r = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": prompt}])
    u = r.usage
    assert u.prompt_tokens_details.cached_tokens == 100
    fresh = u.prompt_tokens - 120
    assert fresh > 0
    # Claude 3 Haiku per 1M tokens: input 0.25, cache read 0.03, cache write 0.30, output 1.25
    expected = (fresh * 0.25 + 100 * 0.03 + 20 * 0.30 + u.completion_tokens * 1.25) / 1e6
    assert u.estimated_cost == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "model, status, code",
    [
        ("claude-badkey", 502, "upstream_auth_error"),
        ("claude-429", 429, "upstream_rate_limited"),
        ("claude-529", 503, "upstream_overloaded"),
        ("claude-500", 502, "upstream_error"),
    ],
)
def test_upstream_errors(client: openai.OpenAI, model: str, status: int, code: str) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == status
    assert info.value.body["code"] == code
    assert UPSTREAM_KEY not in str(info.value.body) and "invalid-key" not in str(info.value.body)
    if status == 429:
        assert info.value.response.headers["retry-after"] == "7"


def test_stream_errors_before_the_first_event(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        list(client.chat.completions.create(model="claude-529", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert info.value.status_code == 503


def test_cut_stream_ends_with_an_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="claude-cut", messages=[{"role": "user", "content": "hi"}], stream=True))


def test_bad_request_is_the_clients(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "[[sim: status=400]] hi"}])
    assert info.value.status_code == 400


def test_prompt_too_long_is_context_length_exceeded() -> None:
    body = b'{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208656 tokens > 200000 maximum"}}'
    err = map_failure(parse_error(400, body, {}), "anth", str)
    assert isinstance(err, ContextLengthExceeded) and err.status == 400 and "208656" in err.message
    assert parse_error(500, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', {}).status == 529
