"""The Azure OpenAI surface: every Azure snippet of 004 (AzureOpenAI SDK, requests, curl) run
unchanged against lmgate, each served by an OpenAI-protocol deployment and by a Gemini one."""

from __future__ import annotations

import base64
import json
import subprocess

import openai
import pytest
import requests

from lmgate.testing import start_gateway

KEY = "sk-test-azure-surface"
API_VERSION = "2024-02-15-preview"

# The same client-facing names, served by two protocols. Images and audio stay on OpenAI
# (Gemini has no DALL-E or Whisper).
CONFIG = """
providers:
  oa: {{type: openai, base_url: "{sim}/v1", api_key: "sk-upstream-123456"}}
  gem: {{type: gemini, base_url: "{sim}", api_key: "gem-upstream-123456"}}
  an: {{type: anthropic, base_url: "{sim}", api_key: "sk-ant-upstream-123456"}}
  co: {{type: cohere, base_url: "{sim}", api_key: "co-upstream-123456"}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: {chat}, model: {chat_model}}}]
  - name: gpt-4
    deployments: [{{provider: {chat}, model: {chat_model}}}]
  - name: gpt-4o
    deployments: [{{provider: {chat}, model: {chat_model}}}]
  - name: text-embedding-ada-002
    kind: embedding
    deployments: [{{provider: {embed}, model: {embed_model}}}]
  - name: dall-e-3
    deployments: [{{provider: oa, model: dall-e-3}}]
  - name: whisper
    deployments: [{{provider: oa, model: whisper-1}}]
keys:
  - {{key: {key}, name: main}}
"""
BACKENDS = {
    "openai": {"chat": "oa", "chat_model": "gpt-4o-mini", "embed": "oa", "embed_model": "text-embedding-ada-002"},
    "gemini": {"chat": "gem", "chat_model": "gemini-2.5-flash", "embed": "gem", "embed_model": "text-embedding-004"},
    "anthropic": {"chat": "an", "chat_model": "claude-3-haiku-20240307", "embed": "co", "embed_model": "embed-english-v3.0"},
}


@pytest.fixture(scope="module", params=list(BACKENDS))
def gw(request, sim):  # type: ignore[no-untyped-def]
    g = start_gateway(CONFIG.format(sim=sim.base_url, key=KEY, **BACKENDS[request.param]), steps=[])
    g.backend = request.param  # type: ignore[attr-defined]
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw):  # type: ignore[no-untyped-def]
    # 004: azure_endpoint = 'https://api.kadal.ai/proxy/api/v1/azure'
    return openai.AzureOpenAI(azure_endpoint=gw.base_url + "/proxy/api/v1/azure", api_version=API_VERSION, api_key=KEY, max_retries=0)


def _upstream(gw, sim) -> dict:  # type: ignore[no-untyped-def]
    path = {"openai": "/v1/chat/completions", "gemini": ":generateContent", "anthropic": "/v1/messages"}[gw.backend]
    return sim.requests(path)[-1]


def test_chat_snippet(gw, client, sim):  # type: ignore[no-untyped-def]
    response = client.chat.completions.create(model="gpt-4o-mini", temperature=0.7, messages=[{"role": "user", "content": """Hello World"""}])
    assert 'you said "Hello World"' in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop" and response.usage.total_tokens > 0
    sent = _upstream(gw, sim)["body"]
    if gw.backend == "openai":
        assert sent["temperature"] == 0.7 and sent["model"] == "gpt-4o-mini"
    elif gw.backend == "gemini":
        assert sent["generationConfig"]["temperature"] == 0.7 and sent["contents"][0]["parts"] == [{"text": "Hello World"}]
    else:
        assert sent["temperature"] == 0.7 and sent["model"] == "claude-3-haiku-20240307" and sent["max_tokens"] > 0


def test_stream(client):  # type: ignore[no-untyped-def]
    stream = client.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Hello stream"}])
    chunks = list(stream)
    assert 'you said "Hello stream"' in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens > 0


def test_requests_snippet(gw):  # type: ignore[no-untyped-def]
    azure_endpoint = gw.base_url + "/proxy/api/v1/azure"
    headers = {"Content-Type": "application/json", "api-key": KEY}
    body = {"messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello! How can I improve my productivity?"}],
            "model": "gpt-4", "temperature": 0.7}
    response = requests.post(f"{azure_endpoint}/openai/deployments/gpt-4/chat/completions?api-version=2024-02-15-preview", headers=headers, json=body)
    assert response.status_code == 200, response.text
    assert "improve my productivity" in response.json()["choices"][0]["message"]["content"]


def test_curl_snippet(gw):  # type: ignore[no-untyped-def]
    out = subprocess.run(
        ["curl", "-s", "--location", f"{gw.base_url}/proxy/api/v1/azure/openai/deployments/gpt-4o/chat/completions?api-version=2024-02-15-preview",
         "--header", "Content-Type: application/json", "--header", f"api-key: {KEY}",
         "--data", '{"model":"gpt-4o",\n"temperature":0.7,\n"messages":[\n{"role": "user", "content": "Hello World"}\n]}'],
        capture_output=True, timeout=30, check=True,
    )
    assert 'you said "Hello World"' in json.loads(out.stdout)["choices"][0]["message"]["content"]


def test_image_snippet(gw, client, sim):  # type: ignore[no-untyped-def]
    base64_image = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 64).decode("utf-8")
    response = client.chat.completions.create(model="gpt-4o", temperature=0.7, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What's in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{base64_image}"}},
    ]}])
    assert "1 image" in response.choices[0].message.content
    sent = _upstream(gw, sim)["body"]
    if gw.backend == "gemini":
        assert sent["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "image/jpeg"


def test_embeddings_snippet(client):  # type: ignore[no-untyped-def]
    response = client.embeddings.create(input="Your text string", model="text-embedding-ada-002")
    assert len(response.data[0].embedding) > 0 and response.usage.prompt_tokens > 0


def test_dalle_snippet(client, sim):  # type: ignore[no-untyped-def]
    response = client.images.generate(model="dall-e-3", prompt="generate a cat", size="1024x1024", quality="standard", n=1)
    assert response.data[0].url
    with pytest.raises(openai.BadRequestError) as info:  # 004: "For dall-e-3, only n=1 is supported."
        client.images.generate(model="dall-e-3", prompt="generate a cat", n=2)
    assert info.value.status_code == 400


def test_whisper_snippet(client):  # type: ignore[no-untyped-def]
    audio_file = ("sample.mp3", b"ID3" + b"\x00" * 3000, "audio/mpeg")
    transcription = client.audio.transcriptions.create(model="whisper", temperature=0, response_format="verbose_json", file=audio_file)
    assert transcription.text.startswith("Simulated transcription of sample.mp3")


def test_routes_without_azure_prefix_bearer_key_and_missing_api_version(gw):  # type: ignore[no-untyped-def]
    body = {"messages": [{"role": "user", "content": "hi"}]}
    r = requests.post(f"{gw.base_url}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", json=body, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    r = requests.post(f"{gw.base_url}/azure/openai/deployments/gpt-4o/chat/completions", json=body, headers={"api-key": KEY})
    assert r.status_code == 404 and r.json()["error"]["code"] == "404"
    r = requests.post(f"{gw.base_url}/azure/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", json=body, headers={"api-key": "wrong-key-12345"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = requests.post(f"{gw.base_url}/azure/openai/deployments/no-such/chat/completions?api-version=2024-10-21", json=body, headers={"api-key": KEY})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_tool_round_trip(client):  # type: ignore[no-untyped-def]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]
    first = client.chat.completions.create(model="gpt-4o", tools=tools, messages=[{"role": "user", "content": "find it [[sim: tool=lookup]]"}])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.id
    second = client.chat.completions.create(model="gpt-4o", tools=tools, messages=[
        {"role": "user", "content": "find it"}, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "found: 42"}])
    assert "found: 42" in second.choices[0].message.content
