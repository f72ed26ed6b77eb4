"""The gemini provider (AI Studio) through the gateway: the openai SDK in front, the simulator's Gemini behind."""

from __future__ import annotations

import base64
import json

import openai
import pytest
import requests

from lmgate.catalog.tokens import billable_chars
from lmgate.testing import start_gateway
from lmgate.testing import sample_pdf as make_pdf

KEY = "sk-test-gemini-provider"
SECRET = "AIzaSy-upstream-secret-123456"

CONFIG = """
providers:
  gem: {{type: gemini, base_url: "{sim}", api_key: "{secret}"}}
  gem-bad-key: {{type: gemini, base_url: "{sim}", api_key: "invalid-gemini-key"}}
  gem-429: {{type: gemini, base_url: "{sim}/_sim/status=429,retry_after=7", api_key: "{secret}"}}
  gem-503: {{type: gemini, base_url: "{sim}/_sim/status=503", api_key: "{secret}"}}
  gem-504: {{type: gemini, base_url: "{sim}/_sim/status=504", api_key: "{secret}"}}
models:
  - name: gemini-2.5-flash
    deployments: [{{provider: gem, model: gemini-2.5-flash}}]
  - name: gemini-1.5-pro
    deployments: [{{provider: gem, model: gemini-1.5-pro}}]
  - name: bad-key
    deployments: [{{provider: gem-bad-key, model: gemini-2.5-flash}}]
  - name: throttled
    deployments: [{{provider: gem-429, model: gemini-2.5-flash}}]
  - name: overloaded
    deployments: [{{provider: gem-503, model: gemini-2.5-flash}}]
  - name: slow
    deployments: [{{provider: gem-504, model: gemini-2.5-flash}}]
  - name: text-embedding-004
    kind: embedding
    deployments: [{{provider: gem, model: text-embedding-004}}]
keys:
  - {{key: {key}, name: main}}
router: {{retries: 0, backoff_s: 0}}
media: {{allow_hosts: ["127.0.0.1"]}}
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


def _sent(sim, model: str = "gemini-2.5-flash", action: str = "generateContent") -> dict:  # type: ignore[no-untyped-def]
    return sim.requests(f"/v1beta/models/{model}:{action}")[-1]


def test_text_system_and_multi_turn(client, sim):  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(model="gemini-2.5-flash", temperature=0.3, top_p=0.8, stop=["END"], seed=3, max_tokens=200, messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "hello gemini"},
    ])
    assert 'you said "hello gemini"' in r.choices[0].message.content and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    sent = _sent(sim)
    assert sent["headers"]["x-goog-api-key"] == SECRET
    body = sent["body"]
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {"temperature": 0.3, "topP": 0.8, "maxOutputTokens": 200, "seed": 3, "stopSequences": ["END"]}


def test_image_document_and_image_url_become_inline_data(client, sim):  # type: ignore[no-untyped-def]
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
    pdf = base64.b64encode(make_pdf()).decode()
    url = sim.base_url + "/_sim/images/abc123.png"  # the simulator serves PNGs; 127.0.0.1 is allowlisted here
    r = client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}},
        {"type": "image_url", "image_url": {"url": url}},
    ]}])
    assert "2 images" in r.choices[0].message.content and "1 document" in r.choices[0].message.content
    parts = _sent(sim)["body"]["contents"][0]["parts"]
    assert [p.get("inlineData", {}).get("mimeType") for p in parts[1:]] == ["image/png", "application/pdf", "image/png"]
    assert base64.b64decode(parts[3]["inlineData"]["data"]).startswith(b"\x89PNG")


def test_tool_round_trip_keeps_the_minted_id(client, sim):  # type: ignore[no-untyped-def]
    first = client.chat.completions.create(model="gemini-2.5-flash", tools=TOOLS, tool_choice="required",
                                           messages=[{"role": "user", "content": "weather? [[sim: tool=get_weather]]"}])
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.id and call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    decl = _sent(sim)["body"]
    assert decl["tools"][0]["functionDeclarations"][0]["parameters"]["properties"] == {"city": {"type": "STRING"}}
    assert decl["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    second = client.chat.completions.create(model="gemini-2.5-flash", tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ])
    assert "sunny" in second.choices[0].message.content and second.choices[0].finish_reason == "stop"
    contents = _sent(sim)["body"]["contents"]
    fc = contents[1]["parts"][0]["functionCall"]
    fr = contents[2]["parts"][0]["functionResponse"]
    assert fc["id"] == call.id == fr["id"] and fr["name"] == "get_weather" and fr["response"] == {"output": "sunny"}


def test_stream_text_tools_and_usage(client, sim):  # type: ignore[no-untyped-def]
    s = client.chat.completions.create(model="gemini-2.5-flash", stream=True, stream_options={"include_usage": True},
                                       messages=[{"role": "user", "content": "stream please"}])
    chunks = list(s)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert 'you said "stream please"' in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.prompt_tokens > 0 and chunks[-1].usage.completion_tokens > 0
    assert _sent(sim, action="streamGenerateContent")["query"] == {"alt": "sse"}
    s = client.chat.completions.create(model="gemini-2.5-flash", stream=True, tools=TOOLS,
                                       messages=[{"role": "user", "content": "w [[sim: tool=get_weather]]"}])
    calls = [tc for c in s if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id and calls[0].function.name == "get_weather" and json.loads(calls[0].function.arguments) == {"city": "Paris"}


def test_finish_reasons_and_json_output(client, sim):  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(model="gemini-2.5-flash", max_tokens=2, messages=[{"role": "user", "content": "tell me a long story"}])
    assert r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x [[sim: finish=content_filter]]"}])
    assert r.choices[0].finish_reason == "content_filter"
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}
    r = client.chat.completions.create(model="gemini-2.5-flash", response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
                                       messages=[{"role": "user", "content": "where?"}])
    assert json.loads(r.choices[0].message.content) == {"city": "Paris"}
    gen = _sent(sim)["body"]["generationConfig"]
    assert gen == {"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}


@pytest.mark.parametrize(
    "model,prompt,status,code",
    [
        ("throttled", "hi", 429, "upstream_rate_limited"),
        ("bad-key", "hi", 502, "upstream_auth_error"),
        ("overloaded", "hi", 503, "upstream_overloaded"),
        ("slow", "hi", 504, "upstream_timeout"),
        ("gemini-2.5-flash", "x [[sim: status=400 error=context_length_exceeded]]", 400, "context_length_exceeded"),
        ("gemini-2.5-flash", "x [[sim: status=400]]", 400, "bad_request"),
    ],
)
def test_errors_are_mapped(gw, model, prompt, status, code):  # type: ignore[no-untyped-def]
    r = requests.post(gw.base_url + "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": prompt}]},
                      headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert SECRET not in r.text
    if status == 429:
        assert r.headers["retry-after"] == "7"


def test_in_stream_error_is_reported(gw):  # type: ignore[no-untyped-def]
    r = requests.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"}, stream=True,
                      json={"model": "gemini-2.5-flash", "stream": True, "messages": [{"role": "user", "content": "z [[sim: error_after=1 tokens=60]]"}]})
    lines = [line for line in r.iter_lines() if line.startswith(b"data: ")]
    assert b'"error"' in lines[-1]


def test_gemini_1x_is_charged_per_character(client):  # type: ignore[no-untyped-def]
    prompt = "count my characters please"
    for stream in (False, True):
        if stream:
            chunks = list(client.chat.completions.create(model="gemini-1.5-pro", stream=True, stream_options={"include_usage": True},
                                                         messages=[{"role": "user", "content": prompt}]))
            answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = chunks[-1].usage
        else:
            r = client.chat.completions.create(model="gemini-1.5-pro", messages=[{"role": "user", "content": prompt}])
            answer, usage = r.choices[0].message.content, r.usage
        expected = round((billable_chars(prompt) * 0.0003125 + billable_chars(answer) * 0.00125) / 1000, 10)
        assert usage.model_extra["estimated_cost"] == pytest.approx(expected)


def test_embeddings_split_at_100_and_keep_order(client, sim):  # type: ignore[no-untyped-def]
    sim.clear()
    texts = [f"text number {i}" for i in range(150)]
    e = client.embeddings.create(model="text-embedding-004", input=texts, extra_body={"input_type": "search_query"})
    batches = sim.requests(":batchEmbedContents")
    assert sorted(len(b["body"]["requests"]) for b in batches) == [50, 100]
    first = next(b for b in batches if len(b["body"]["requests"]) == 100)["body"]["requests"][0]
    assert first["model"] == "models/text-embedding-004" and first["taskType"] == "RETRIEVAL_QUERY"
    single = client.embeddings.create(model="text-embedding-004", input=texts[120], extra_body={"input_type": "search_query"})
    assert e.data[120].embedding == single.data[0].embedding and len(e.data) == 150
    assert e.usage.prompt_tokens > 0
