"""The Gemini surface: the google-genai SDK and 004's `requests` snippets run unchanged against
lmgate, served by a Gemini deployment (same format, forwarded) and by an OpenAI one (translated)."""

from __future__ import annotations

import base64
import json

import pytest
import requests
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from lmgate.testing import start_gateway

KEY = "sk-test-gemini-surface"

CONFIG = """
providers:
  oa: {{type: openai, base_url: "{sim}/v1", api_key: "sk-upstream-123456"}}
  gem: {{type: gemini, base_url: "{sim}", api_key: "gem-upstream-123456"}}
  an: {{type: anthropic, base_url: "{sim}", api_key: "sk-ant-upstream-123456"}}
  co: {{type: cohere, base_url: "{sim}", api_key: "co-upstream-123456"}}
models:
  - name: gemini-1.5-pro
    deployments: [{{provider: {chat}, model: {chat_model}}}]
  - name: gemini-2.5-flash
    deployments: [{{provider: {chat}, model: {chat_model}}}]
  - name: text-embedding-004
    kind: embedding
    deployments: [{{provider: {embed}, model: {embed_model}}}]
keys:
  - {{key: {key}, name: main}}
"""
BACKENDS = {
    "gemini": {"chat": "gem", "chat_model": "gemini-2.5-flash", "embed": "gem", "embed_model": "text-embedding-004"},
    "openai": {"chat": "oa", "chat_model": "gpt-4o-mini", "embed": "oa", "embed_model": "text-embedding-3-small"},
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
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=gw.base_url))


def _upstream(gw, sim, stream: bool = False) -> dict:  # type: ignore[no-untyped-def]
    if gw.backend == "gemini":
        return sim.requests(":streamGenerateContent" if stream else ":generateContent")[-1]
    return sim.requests("/v1/messages" if gw.backend == "anthropic" else "/v1/chat/completions")[-1]


# ---------------------------------------------------------------- 004's requests snippets


def test_004_generate_content_snippet_with_doubled_prefix(gw, sim):  # type: ignore[no-untyped-def]
    lm_key = KEY
    LLM_Gateway_SERVER_URL = gw.base_url + "/proxy/api/v1/"
    model_name = "gemini-1.5-pro"
    url = f"{LLM_Gateway_SERVER_URL}/proxy/api/v1/gemini/models/{model_name}:generateContent"
    headers = {"Content-Type": "application/json", "api-key": f"{lm_key}"}
    data = {"contents": [{"role": "user", "parts": [{"text": "Hello World"}]}]}
    response = requests.post(url, headers=headers, json=data)
    assert response.status_code == 200, response.text
    body = response.json()
    cand = body["candidates"][0]
    assert 'you said "Hello World"' in cand["content"]["parts"][0]["text"] and cand["finishReason"] == "STOP"
    assert body["usageMetadata"]["totalTokenCount"] > 0
    assert float(response.headers["x-lmgate-cost"]) > 0
    sent = _upstream(gw, sim)["body"]
    if gw.backend == "gemini":
        assert sent == data  # the same format: forwarded as it came
    else:
        assert sent["messages"] == [{"role": "user", "content": "Hello World"}]


def test_004_image_snippet(gw, sim):  # type: ignore[no-untyped-def]
    content = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 64).decode("utf-8")
    url = f"{gw.base_url}/proxy/api/v1//proxy/api/v1/gemini/models/gemini-1.5-pro:generateContent"
    data = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/jpg", "data": content}}, {"text": "What's in this image?"}]}]}
    response = requests.post(url, headers={"Content-Type": "application/json", "api-key": KEY}, json=data)
    assert response.status_code == 200, response.text
    assert "1 image" in response.json()["candidates"][0]["content"]["parts"][0]["text"]
    if gw.backend == "openai":
        parts = _upstream(gw, sim)["body"]["messages"][0]["content"]
        assert parts[0]["image_url"]["url"].startswith("data:image/jpg;base64,") and parts[1] == {"type": "text", "text": "What's in this image?"}


def test_stream_framings_and_key_locations(gw):  # type: ignore[no-untyped-def]
    data = {"contents": [{"role": "user", "parts": [{"text": "stream me"}]}]}
    base = f"{gw.base_url}/gemini/models/gemini-2.5-flash:streamGenerateContent"
    r = requests.post(base + "?alt=sse", headers={"x-goog-api-key": KEY}, json=data)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in r.text.split("\r\n") if line.startswith("data: ")]
    text = "".join(p.get("text", "") for e in events for c in e.get("candidates", []) for p in c["content"]["parts"])
    assert 'you said "stream me"' in text
    assert events[-1]["candidates"][0]["finishReason"] == "STOP" and events[-1]["usageMetadata"]["candidatesTokenCount"] > 0
    r = requests.post(base + f"?key={KEY}", json=data)  # no alt=sse: one JSON array, streamed
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    array = r.json()
    assert isinstance(array, list) and array[-1]["candidates"][0]["finishReason"] == "STOP"
    assert 'you said "stream me"' in "".join(p.get("text", "") for e in array for c in e["candidates"] for p in c["content"]["parts"])


def test_errors_in_googles_shape(gw):  # type: ignore[no-untyped-def]
    data = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = requests.post(f"{gw.base_url}/gemini/models/gemini-2.5-flash:generateContent", headers={"api-key": "wrong-key-123"}, json=data)
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED" and r.json()["error"]["code"] == 401
    r = requests.post(f"{gw.base_url}/gemini/models/no-such-model:generateContent", headers={"api-key": KEY}, json=data)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    r = requests.post(f"{gw.base_url}/gemini/models/gemini-2.5-flash:generateContent", headers={"api-key": KEY}, json={"contents": []})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = requests.post(f"{gw.base_url}/gemini/models/gemini-2.5-flash:generateContent", headers={"api-key": KEY},
                      json={"contents": [{"role": "user", "parts": [{"text": "x [[sim: status=429]]"}]}]})
    assert r.status_code == 429 and r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


# ---------------------------------------------------------------- google-genai


def test_genai_generate_content(gw, client, sim):  # type: ignore[no-untyped-def]
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Hello genai",
                                              config=types.GenerateContentConfig(system_instruction="be kind", temperature=0.4, max_output_tokens=300))
    assert 'you said "Hello genai"' in response.text
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.prompt_token_count > 0 and response.usage_metadata.candidates_token_count > 0
    sent = _upstream(gw, sim)["body"]
    if gw.backend == "openai":
        assert sent["messages"][0] == {"role": "system", "content": "be kind"} and sent["max_tokens"] == 300 and sent["temperature"] == 0.4


def test_genai_stream(gw, client):  # type: ignore[no-untyped-def]
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hello genai stream"))
    assert 'you said "Hello genai stream"' in "".join(c.text or "" for c in chunks)
    assert chunks[-1].usage_metadata.candidates_token_count > 0
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_genai_automatic_function_calling(gw, client, sim):  # type: ignore[no-untyped-def]
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Weather in Paris? [[sim: tool=get_weather]]",
                                              config=types.GenerateContentConfig(tools=[get_weather]))
    assert "sunny in Paris" in response.text
    history = response.automatic_function_calling_history
    call = history[1].parts[0].function_call
    result = history[2].parts[0].function_response
    assert call.name == "get_weather" and call.args == {"city": "Paris"} and result.name == "get_weather"
    assert call.id  # minted by lmgate when the upstream gives none; the SDK's AFC answers by name only
    sent = _upstream(gw, sim)["body"]
    if gw.backend == "openai":  # the result reached the OpenAI upstream under the call's id
        assert sent["messages"][1]["tool_calls"][0]["id"] == sent["messages"][2]["tool_call_id"]
        assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_genai_manual_function_calling_keeps_the_id(gw, client):  # type: ignore[no-untyped-def]
    decl = types.FunctionDeclaration(name="lookup", description="find", parameters_json_schema={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[decl])], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    first = client.models.generate_content(model="gemini-2.5-flash", contents="find x [[sim: tool=lookup]]", config=config)
    call = first.function_calls[0]
    assert call.name == "lookup" and call.id
    contents = [
        types.Content(role="user", parts=[types.Part(text="find x")]),
        first.candidates[0].content,
        types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(id=call.id, name="lookup", response={"output": "x is 42"}))]),
    ]
    second = client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
    assert "x is 42" in second.text


def test_genai_embeddings_and_count_tokens(client):  # type: ignore[no-untyped-def]
    result = client.models.embed_content(model="text-embedding-004", contents=["first text", "second text"],
                                         config=types.EmbedContentConfig(task_type="RETRIEVAL_DOCUMENT"))
    assert len(result.embeddings) == 2 and len(result.embeddings[0].values) > 0
    assert result.embeddings[0].values != result.embeddings[1].values
    count = client.models.count_tokens(model="gemini-2.5-flash", contents="How many tokens is this?")
    assert count.total_tokens > 0
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.count_tokens(model="no-such-model", contents="x")
    assert info.value.code == 404
