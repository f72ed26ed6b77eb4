"""The OpenAI surface end to end: the real openai SDK and requests against a gateway on loopback,
served by the provider simulator through the openai provider."""

from __future__ import annotations

import base64
import json
import time

import openai
import pytest
import requests

from ledger_helpers import ledger_record, start_ledger_gateway

KEY = "sk-test-openai-surface"
LIMITED_KEY = "sk-test-only-mini"
UPSTREAM_SECRET = "sk-upstream-very-secret-123456"

CONFIG = """
providers:
  sim: {{type: openai, base_url: "{sim}/v1", api_key: "{secret}"}}
  sim-500: {{type: openai, base_url: "{sim}/_sim/status=500/v1", api_key: "{secret}"}}
  sim-503: {{type: openai, base_url: "{sim}/_sim/status=503/v1", api_key: "{secret}"}}
  sim-429: {{type: openai, base_url: "{sim}/_sim/status=429,retry_after=7/v1", api_key: "{secret}"}}
  sim-slow: {{type: openai, base_url: "{sim}/_sim/delay_ms=3000/v1", api_key: "{secret}", timeout: 0.5}}
models:
  - name: gpt-4o
    deployments: [{{provider: sim, model: gpt-4o}}]
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: gpt-35-turbo
    deployments: [{{provider: sim, model: gpt-35-turbo}}]
  - name: tiny
    deployments: [{{provider: sim, model: tiny}}]
    context_window: 60
    pricing: {{input: 1, output: 2, unit: 1M tokens}}
  - name: old-model
    deployments: [{{provider: sim, model: old-model}}]
    status: deprecated
  - name: gemma
    deployments: [{{provider: sim, model: inference-gemma-12b-it, merge_roles: true}}]
  - name: text-embedding-ada-002
    deployments: [{{provider: sim, model: text-embedding-ada-002}}]
  - name: gemini-2.5-flash
    deployments: [{{provider: sim, model: gemini-2.5-flash}}]
    modalities: [text, image, document]
  - name: broken
    deployments: [{{provider: sim-500, model: gpt-4o}}]
  - name: overloaded
    deployments: [{{provider: sim-503, model: gpt-4o}}]
  - name: throttled
    deployments: [{{provider: sim-429, model: gpt-4o}}]
  - name: hanging
    deployments: [{{provider: sim-slow, model: gpt-4o}}]
keys:
  - {{key: {key}, name: main}}
  - {{key: {limited}, name: limited, models: ["gpt-4o-mini"]}}
router: {{retries: 1, backoff_s: 0}}
server: {{max_body_bytes: 200000}}
"""


@pytest.fixture(scope="module")
def gw(sim):  # type: ignore[no-untyped-def]
    g = start_ledger_gateway(CONFIG.format(sim=sim.base_url, secret=UPSTREAM_SECRET, key=KEY, limited=LIMITED_KEY))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)


# ---------------------------------------------------------------- answers


def test_chat_whole_has_cost_and_headers(client, gw):  # type: ignore[no-untyped-def]
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello!"}])
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop"
    cost = answer.usage.model_extra["estimated_cost"]
    assert cost > 0
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert float(raw.headers["x-lmgate-cost"]) == pytest.approx(cost)
    assert raw.headers["x-lmgate-deployment"] == "sim/gpt-4o"
    # gpt-4o in 004: $2.75 in, $11 out per 1M tokens
    expected = (answer.usage.prompt_tokens * 2.75 + answer.usage.completion_tokens * 11) / 1e6
    assert cost == pytest.approx(expected, rel=1e-6)
    rec = ledger_record(gw, raw.headers["x-request-id"])
    assert rec.status == 200 and rec.cost_usd == pytest.approx(cost) and rec.key_name == "main"


async def test_async_client(gw):  # type: ignore[no-untyped-def]
    aclient = openai.AsyncOpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)
    answer = await aclient.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "async hello"}])
    assert answer.choices[0].message.content
    assert answer.usage.model_extra["estimated_cost"] > 0
    await aclient.close()


def test_stream_with_usage_carries_cost(client):  # type: ignore[no-untyped-def]
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Tell me a story"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Tell me a story"}])
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.completion_tokens > 0
    assert last.usage.model_extra["estimated_cost"] > 0


def test_stream_without_usage_is_still_accounted(client, gw):  # type: ignore[no-untyped-def]
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "count"}], stream=True)
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)
    assert chunks and chunks[-1].choices[0].finish_reason == "stop"
    rec = ledger_record(gw, raw.headers["x-request-id"])
    assert rec.status == 200 and rec.stream
    assert rec.output_tokens > 0 and rec.cost_usd > 0


def test_tools_round_trip_keeps_call_id(client, sim):  # type: ignore[no-untyped-def]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    ask = 'What is the weather in Paris? [[sim: tool=get_weather args={"city":"Paris"}]]'
    first = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": ask}], tools=tools)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    sim.clear()
    second = client.chat.completions.create(
        model="gpt-4o",
        tools=tools,
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
        ],
    )
    assert "21" in second.choices[0].message.content
    sent = sim.requests("/chat/completions")[-1]["body"]
    assert sent["messages"][2]["tool_call_id"] == call.id


def test_streamed_tool_call(client):  # type: ignore[no-untyped-def]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    stream = client.chat.completions.create(
        model="gpt-4o", stream=True, tools=tools, messages=[{"role": "user", "content": 'find [[sim: tool=lookup args={"q":"x"}]]'}]
    )
    calls: dict[int, dict] = {}
    finish = None
    for c in stream:
        for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            entry = calls.setdefault(d.index, {"id": None, "name": None, "args": ""})
            entry["id"] = entry["id"] or d.id
            entry["name"] = entry["name"] or d.function.name
            entry["args"] += d.function.arguments or ""
        if c.choices and c.choices[0].finish_reason:
            finish = c.choices[0].finish_reason
    assert finish == "tool_calls"
    assert calls[0]["name"] == "lookup" and json.loads(calls[0]["args"]) == {"q": "x"} and calls[0]["id"]


def test_data_uri_image(client):  # type: ignore[no-untyped-def]
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()
    answer = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "What's in this image?"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}],
            }
        ],
    )
    assert answer.choices[0].message.content


def test_image_to_text_only_model_is_400_naming_model_and_modality(client, sim):  # type: ignore[no-untyped-def]
    sim.clear()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="gpt-35-turbo",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}],
        )
    assert err.value.status_code == 400
    assert "gpt-35-turbo" in err.value.message and "image" in err.value.message
    assert err.value.code == "unsupported_modality"
    assert sim.requests("/chat/completions") == []  # refused before any upstream call


def test_bad_base64_is_400(client):  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@not-base64@@@"}}]}],
        )
    assert err.value.code == "invalid_base64"


def test_context_length_exceeded_before_the_call(client, sim):  # type: ignore[no-untyped-def]
    sim.clear()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "word " * 400}])
    assert err.value.code == "context_length_exceeded"
    assert sim.requests("/chat/completions") == []


def test_deprecated_model_warns(client):  # type: ignore[no-untyped-def]
    raw = client.chat.completions.with_raw_response.create(model="old-model", messages=[{"role": "user", "content": "hi"}])
    assert "deprecated" in raw.headers["warning"]


def test_embeddings(client):  # type: ignore[no-untyped-def]
    res = client.embeddings.create(model="text-embedding-ada-002", input=["one", "two"])
    assert len(res.data) == 2 and len(res.data[0].embedding) > 10
    assert res.usage.model_extra["estimated_cost"] >= 0
    again = client.embeddings.create(model="text-embedding-ada-002", input="one")
    assert again.data[0].embedding == res.data[0].embedding


def test_003_shapes_are_normalised_before_the_upstream(gw, sim):  # type: ignore[no-untyped-def]
    """003 puts "detail" beside image_url and sends files as {file_name, file_data}."""
    sim.clear()
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nxx").decode()
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 test").decode()
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Answer in JSON."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Is this a stapler?"},
                    {"type": "image_url", "image_url": {"url": png}, "detail": "auto"},
                    {"type": "file", "file": {"file_name": "Test", "file_data": pdf}},
                ],
            },
        ],
    }
    body["model"] = "gemini-2.5-flash"  # as in 003; takes documents
    r = requests.post(gw.base_url + "/api/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    sent = sim.requests("/chat/completions")[-1]["body"]
    parts = sent["messages"][1]["content"]
    image = next(p for p in parts if p["type"] == "image_url")
    assert "detail" not in image and image["image_url"]["detail"] == "auto"
    file = next(p for p in parts if p["type"] == "file")
    assert file["file"]["filename"] == "Test" and "file_name" not in file["file"]


def test_merge_roles_per_deployment(gw, sim):  # type: ignore[no-untyped-def]
    sim.clear()
    body = {
        "model": "gemma",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "part one"}]},
            {"role": "user", "content": [{"type": "text", "text": "part two"}]},
        ],
    }
    r = requests.post(gw.base_url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    sent = sim.requests("/chat/completions")[-1]["body"]
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert sent["model"] == "inference-gemma-12b-it"


def test_fast_path_gives_the_same_upstream_request_as_the_translating_path(gw, sim):  # type: ignore[no-untyped-def]
    """A standard body is forwarded as is; the same body with a 003 quirk is rendered from the
    canonical form: the upstream must receive the same request either way."""
    plain = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]},
        ],
        "temperature": 0.3,
        "max_tokens": 50,
    }
    quirky = json.loads(json.dumps(plain))
    quirky["messages"][1]["content"][1] = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}, "detail": "low"}
    answers = []
    sent = []
    for body in (plain, quirky):
        sim.clear()
        r = requests.post(gw.base_url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}", "x-lmgate-cache": "0"})
        assert r.status_code == 200
        answers.append(r.json()["choices"])
        sent.append(sim.requests("/chat/completions")[-1]["body"])
    assert sent[0] == sent[1]
    assert answers[0] == answers[1]


# ---------------------------------------------------------------- keys and options


def test_key_options_suffix_and_headers_reach_the_ledger(gw):  # type: ignore[no-untyped-def]
    suffix = str({"is_cache": 0, "use_guard": 2, "app_name": "DSPY", "Bot_Id": "cf72e8b", "userid": "100", "is_system": False})
    r = requests.post(
        gw.base_url + "/proxy/api/v1/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {KEY}/{suffix}", "x-lmgate-metadata": json.dumps({"Query_Id": "24"})},
    )
    assert r.status_code == 200, r.text
    rec = ledger_record(gw, r.headers["x-request-id"])
    assert rec.app_name == "DSPY"
    assert rec.options == {"is_cache": 0, "use_guard": 2}
    assert rec.metadata == {"Bot_Id": "cf72e8b", "userid": "100", "is_system": False, "Query_Id": "24"}


def test_api_key_header_is_accepted(gw):  # type: ignore[no-untyped-def]
    r = requests.post(gw.base_url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, headers={"api-key": KEY})
    assert r.status_code == 200


def test_suffix_is_never_evaluated(gw):  # type: ignore[no-untyped-def]
    r = requests.post(
        gw.base_url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {KEY}/{{'x': __import__('os').system('echo pwned')}}"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_key_options"


def test_models_list_respects_allowlist(gw):  # type: ignore[no-untyped-def]
    r = requests.get(gw.base_url + "/v1/models", headers={"authorization": f"Bearer {KEY}"})
    ids = [m["id"] for m in r.json()["data"]]
    assert "gpt-4o" in ids and "text-embedding-ada-002" in ids
    limited = requests.get(gw.base_url + "/api/v1/models", headers={"authorization": f"Bearer {LIMITED_KEY}"})
    assert [m["id"] for m in limited.json()["data"]] == ["gpt-4o-mini"]


# ---------------------------------------------------------------- errors as the SDK's own classes


def test_errors_are_sdk_exceptions(gw):  # type: ignore[no-untyped-def]
    msgs = [{"role": "user", "content": "hi"}]
    bad = openai.OpenAI(base_url=gw.base_url + "/v1", api_key="sk-wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o", messages=msgs)
    limited = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=LIMITED_KEY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        limited.chat.completions.create(model="gpt-4o", messages=msgs)
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="no-such-model", messages=msgs)
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="gpt-4o", messages=msgs, temperature="hot")  # type: ignore[arg-type]
    with pytest.raises(openai.InternalServerError) as e502:
        client.chat.completions.create(model="broken", messages=msgs)
    assert e502.value.status_code == 502
    with pytest.raises(openai.InternalServerError) as e503:
        client.chat.completions.create(model="overloaded", messages=msgs)
    assert e503.value.status_code == 503
    with pytest.raises(openai.RateLimitError) as e429:
        client.chat.completions.create(model="throttled", messages=msgs)
    assert e429.value.response.headers["retry-after"] == "7"
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as e504:
        client.chat.completions.create(model="hanging", messages=msgs)
    assert e504.value.status_code == 504 and time.monotonic() - started < 2.9


def test_upstream_secret_never_relayed(gw):  # type: ignore[no-untyped-def]
    r = requests.post(
        gw.base_url + "/v1/chat/completions",
        json={"model": "broken", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 502
    assert UPSTREAM_SECRET not in r.text


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "missing_field"),
        (b'{"model": "gpt-4o", "messages": "hello"}', 422, "invalid_type"),
        (b'{"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}', 422, "invalid_value"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', 422, "invalid_value"),
        (b'{"model": "gpt-4o", "messages": [{"role": "tool", "content": "x"}]}', 400, "bad_request"),
    ],
)
def test_bad_input_is_4xx_in_openai_shape(gw, body, status, code):  # type: ignore[no-untyped-def]
    r = requests.post(gw.base_url + "/v1/chat/completions", data=body, headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_body_too_large_is_413(gw):  # type: ignore[no-untyped-def]
    big = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 300_000}]})
    r = requests.post(gw.base_url + "/v1/chat/completions", data=big, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_404_and_405_in_openai_shape(gw):  # type: ignore[no-untyped-def]
    r = requests.get(gw.base_url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    r = requests.get(gw.base_url + "/v1/chat/completions")
    assert r.status_code == 405 and "POST" in r.headers["allow"]


def test_health(gw):  # type: ignore[no-untyped-def]
    assert requests.get(gw.base_url + "/health").json() == {"status": "ok"}
    assert requests.get(gw.base_url + "/health/ready").status_code == 200
