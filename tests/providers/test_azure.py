"""The azure provider through the gateway: the openai SDK in front, the simulator's Azure OpenAI behind."""

from __future__ import annotations

import base64
import json

import openai
import pytest
import requests

from lmgate.testing import start_gateway
from lmgate.testing import sample_pdf as make_pdf

KEY = "sk-test-azure-provider"
SECRET = "azure-upstream-secret-123456"

CONFIG = """
providers:
  az: {{type: azure, base_url: "{sim}", api_key: "{secret}", api_version: "2024-10-21"}}
  az-old: {{type: azure, base_url: "{sim}/openai", api_key: "{secret}", api_version: "2024-02-15-preview"}}
  az-bad-key: {{type: azure, base_url: "{sim}", api_key: "invalid-key-000000", api_version: "2024-10-21"}}
  az-429: {{type: azure, base_url: "{sim}/_sim/status=429,retry_after=7", api_key: "{secret}"}}
  az-500: {{type: azure, base_url: "{sim}/_sim/status=500", api_key: "{secret}"}}
  az-503: {{type: azure, base_url: "{sim}/_sim/status=503", api_key: "{secret}"}}
models:
  - name: gpt-4o
    deployments: [{{provider: az, model: my-gpt4o}}]
  - name: gpt-4o-old
    deployments: [{{provider: az-old, model: my-gpt4o}}]
    pricing: {{input: 2.75, output: 11, unit: 1M tokens}}
  - name: bad-key
    deployments: [{{provider: az-bad-key, model: d}}]
  - name: throttled
    deployments: [{{provider: az-429, model: d}}]
  - name: broken
    deployments: [{{provider: az-500, model: d}}]
  - name: overloaded
    deployments: [{{provider: az-503, model: d}}]
  - name: text-embedding-ada-002
    deployments: [{{provider: az, model: ada}}]
  - name: dall-e-3
    deployments: [{{provider: az, model: dall-e-3}}]
  - name: whisper
    deployments: [{{provider: az, model: whisper-dep}}]
keys:
  - {{key: {key}, name: main}}
router: {{retries: 0, backoff_s: 0}}
"""

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture(scope="module")
def gw(sim):  # type: ignore[no-untyped-def]
    g = start_gateway(CONFIG.format(sim=sim.base_url, secret=SECRET, key=KEY), steps=[])
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)


def _last(sim, part: str) -> dict:  # type: ignore[no-untyped-def]
    return sim.requests(part)[-1]


def test_text_and_system_reach_the_deployment_path_with_api_key_and_the_configured_version(client, sim):  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello azure"}])
    assert 'you said "hello azure"' in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    sent = _last(sim, "/openai/deployments/my-gpt4o/chat/completions")
    assert sent["query"]["api-version"] == "2024-10-21"
    assert sent["headers"]["api-key"] == SECRET and "authorization" not in sent["headers"]
    assert "model" not in sent["body"]
    assert sent["body"]["messages"][0] == {"role": "system", "content": "be brief"}
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    expected = round((r.usage.prompt_tokens * 2.75 + r.usage.completion_tokens * 11) / 1e6, 10)
    assert r.usage.model_extra["estimated_cost"] == pytest.approx(expected)


def test_multi_turn_and_image(client, sim):  # type: ignore[no-untyped-def]
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]},
    ]
    r = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert "1 image" in r.choices[0].message.content
    sent = _last(sim, "/openai/deployments/my-gpt4o/chat/completions")["body"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][2]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_pdf_to_a_model_without_document_input_is_sent_as_text(client, sim):  # type: ignore[no-untyped-def]
    pdf = base64.b64encode(make_pdf("Quarterly numbers are up")).decode()
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "summarise"}, {"type": "file", "file": {"filename": "q.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}}]}])
    assert r.choices[0].finish_reason == "stop"
    content = _last(sim, "/openai/deployments/my-gpt4o/chat/completions")["body"]["messages"][0]["content"]
    texts = [p["text"] for p in content if p["type"] == "text"]
    assert any("Quarterly numbers are up" in t and 'name="q.pdf"' in t for t in texts)
    assert all(p["type"] == "text" for p in content)


def test_tool_call_ids_survive_the_round_trip(client, sim):  # type: ignore[no-untyped-def]
    first = client.chat.completions.create(model="gpt-4o", tools=TOOLS, messages=[{"role": "user", "content": "weather in Paris? [[sim: tool=get_weather]]"}])
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.id.startswith("call_") and json.loads(call.function.arguments) == {"city": "Paris"}
    second = client.chat.completions.create(model="gpt-4o", tools=TOOLS, messages=[
        {"role": "user", "content": "weather in Paris?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ])
    assert "sunny, 21 C" in second.choices[0].message.content
    sent = _last(sim, "/openai/deployments/my-gpt4o/chat/completions")["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2]["tool_call_id"] == call.id


def _sse(gw, model: str, prompt: str, include_usage: bool = True) -> list[dict]:  # type: ignore[no-untyped-def]
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    r = requests.post(gw.base_url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}, stream=True)
    assert r.status_code == 200
    chunks = []
    for line in r.iter_lines():
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            chunks.append(json.loads(line[6:]))
    return chunks


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-old"])
def test_stream_drops_the_annotation_frame_and_always_reports_usage(gw, sim, model):  # type: ignore[no-untyped-def]
    chunks = _sse(gw, model, "stream to me please")
    content_chunks = [c for c in chunks if c["choices"]]
    assert content_chunks and all(c["id"] for c in content_chunks)
    assert not any("prompt_filter_results" in c and not c["choices"] for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in content_chunks)
    assert 'you said "stream to me please"' in text
    assert content_chunks[-1]["choices"][0]["finish_reason"] == "stop"
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0 and usage["estimated_cost"] > 0
    sent = _last(sim, "/openai/deployments/my-gpt4o/chat/completions")
    if model == "gpt-4o":
        assert sent["body"]["stream_options"] == {"include_usage": True}
    else:  # api-versions before 2024-08-01 refuse stream_options: lmgate counts the usage itself
        assert "stream_options" not in sent["body"] and sent["query"]["api-version"] == "2024-02-15-preview"


def test_finish_reasons(client):  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(model="gpt-4o", max_tokens=2, messages=[{"role": "user", "content": "a long answer please"}])
    assert r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x [[sim: finish=content_filter]]"}])
    assert r.choices[0].finish_reason == "content_filter"
    s = client.chat.completions.create(model="gpt-4o", stream=True, messages=[{"role": "user", "content": "y [[sim: finish=content_filter]]"}])
    finishes = [c.choices[0].finish_reason for c in s if c.choices and c.choices[0].finish_reason]
    assert finishes == ["content_filter"]


@pytest.mark.parametrize(
    "model,prompt,status,code",
    [
        ("throttled", "hi", 429, "upstream_rate_limited"),
        ("bad-key", "hi", 502, "upstream_auth_error"),
        ("broken", "hi", 502, "upstream_error"),
        ("overloaded", "hi", 503, "upstream_overloaded"),
        ("gpt-4o", "x [[sim: status=400 error=content_filter]]", 400, "content_filter"),
        ("gpt-4o", "x [[sim: status=400 error=context_length_exceeded]]", 400, "context_length_exceeded"),
    ],
)
def test_errors_are_mapped(gw, model, prompt, status, code):  # type: ignore[no-untyped-def]
    r = requests.post(gw.base_url + "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": prompt}]},
                      headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert SECRET not in r.text and "invalid-key-000000" not in r.text
    if status == 429:
        assert r.headers["retry-after"] == "7"


def test_in_stream_error_ends_the_stream_with_an_error_frame(gw):  # type: ignore[no-untyped-def]
    r = requests.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"}, stream=True,
                      json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "z [[sim: error_after=2]]"}]})
    lines = [line for line in r.iter_lines() if line.startswith(b"data: ")]
    assert b"error" in lines[-1] and lines[-1] != b"data: [DONE]"


def test_embeddings(client, sim):  # type: ignore[no-untyped-def]
    e = client.embeddings.create(model="text-embedding-ada-002", input=["one", "two"])
    assert len(e.data) == 2 and len(e.data[0].embedding) > 0 and e.usage.prompt_tokens > 0
    sent = _last(sim, "/openai/deployments/ada/embeddings")
    assert sent["body"]["input"] == ["one", "two"] and "model" not in sent["body"]


def test_dalle3_passes_size_and_quality_and_refuses_n_over_1_before_calling(client, sim):  # type: ignore[no-untyped-def]
    raw = client.images.with_raw_response.generate(model="dall-e-3", prompt="a cat", size="1792x1024", quality="hd", n=1)
    assert raw.parse().data[0].url
    assert float(raw.headers["x-lmgate-cost"]) == pytest.approx(0.12)  # DALL-E 3 hd 1792x1024
    sent = _last(sim, "/openai/deployments/dall-e-3/images/generations")["body"]
    assert (sent["size"], sent["quality"], sent["n"]) == ("1792x1024", "hd", 1)
    before = len(sim.requests("/images/generations"))
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="dall-e-3", prompt="two cats", n=2)
    assert info.value.body["code"] == "invalid_n" and info.value.body["param"] == "n"
    assert len(sim.requests("/images/generations")) == before


@pytest.mark.parametrize("fmt", ["json", "text", "verbose_json", "srt", "vtt"])
def test_whisper_formats(gw, sim, fmt):  # type: ignore[no-untyped-def]
    audio = b"ID3" + b"\x00" * 4000
    r = requests.post(gw.base_url + "/v1/audio/transcriptions", headers={"authorization": f"Bearer {KEY}"},
                      files={"file": ("talk.mp3", audio, "audio/mpeg")}, data={"model": "whisper", "response_format": fmt, "temperature": "0"})
    assert r.status_code == 200, r.text
    if fmt in ("json", "verbose_json"):
        assert r.headers["content-type"].startswith("application/json")
        assert "Simulated transcription of talk.mp3" in r.json()["text"]
    else:
        assert r.headers["content-type"].startswith("text/plain")
        assert "Simulated transcription of talk.mp3" in r.text
    if fmt == "vtt":
        assert r.text.startswith("WEBVTT")
    if fmt != "text":
        assert float(r.headers["x-lmgate-cost"]) > 0
    sent = _last(sim, "/openai/deployments/whisper-dep/audio/transcriptions")
    assert sent["query"]["api-version"] == "2024-10-21" and sent["headers"]["api-key"] == SECRET


def test_annotation_frames_are_recognised():
    from lmgate.config import ProviderConfig
    from lmgate.providers.azure import AzureProvider
    from lmgate.providers.http import HttpPool

    _annotation_only = AzureProvider("az", ProviderConfig(type="azure", base_url="https://x.example", api_key="k"), HttpPool()).skip_frame

    assert _annotation_only(b'{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}')
    assert _annotation_only(b'{"choices":[{"content_filter_offsets":{"check_offset":0},"content_filter_results":{},"finish_reason":null,"index":0}],"id":""}')
    assert not _annotation_only(b'{"choices":[{"delta":{"content":"x"},"content_filter_results":{},"index":0}],"id":"c"}')
    assert not _annotation_only(b'{"choices":[],"id":"c","usage":{"prompt_tokens":1}}')
