"""The cache end to end: real SDKs against a gateway on loopback, the provider simulator upstream
(its request log counts the upstream calls), Redis for real."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import struct
import uuid

import anthropic
import openai
import pytest
import requests
from google import genai
from google.genai import types as genai_types

from ledger_helpers import ledger_record, start_ledger_gateway
from test_cache_backends import REDIS_URL, needs_redis

KEY = "sk-test-cache-main"
NOCACHE_KEY = "sk-test-cache-off-by-default"

CONFIG = """
providers:
  sim: {{type: openai, base_url: "{sim}/v1", api_key: sk-upstream-secret}}
models:
  - {{name: gpt-4o, deployments: [{{provider: sim, model: gpt-4o}}]}}
  - {{name: fresh, cache: false, deployments: [{{provider: sim, model: gpt-4o}}]}}
  - {{name: text-embedding-3-small, deployments: [{{provider: sim, model: text-embedding-3-small}}]}}
keys:
  - {{key: {key}, name: main}}
  - {{key: {nocache}, name: nocache, cache: false}}
router: {{retries: 0, backoff_s: 0}}
{extra}
"""


def config(sim, extra: str = "") -> str:  # type: ignore[no-untyped-def]
    return CONFIG.format(sim=sim.base_url, key=KEY, nocache=NOCACHE_KEY, extra=extra)


@pytest.fixture(scope="module")
def gw(sim):  # type: ignore[no-untyped-def]
    g = start_ledger_gateway(config(sim))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)


def upstream_calls(sim, token: str, path: str = "/chat/completions") -> int:  # type: ignore[no-untyped-def]
    return sum(token in json.dumps(r.get("body")) for r in sim.requests(path))


def token() -> str:
    return uuid.uuid4().hex[:10]


def test_miss_then_hit_costs_nothing(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    msgs = [{"role": "user", "content": f"hello {t}"}]
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=msgs)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=msgs)
    assert (first.headers["x-lmgate-cache"], second.headers["x-lmgate-cache"]) == ("miss", "hit")
    a, b = first.parse(), second.parse()
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage.model_extra["estimated_cost"] > 0 and b.usage.model_extra["estimated_cost"] == 0
    assert second.headers["x-lmgate-cost"] == "0"
    assert upstream_calls(sim, t) == 1
    rec = ledger_record(gw, second.headers["x-request-id"])
    assert rec.cache_hit and rec.cost_usd == 0 and rec.cache_saved_usd == pytest.approx(a.usage.model_extra["estimated_cost"])


@pytest.mark.parametrize("how", ["suffix", "header", "no-cache", "no-store", "key default", "model default"])
def test_bypass(gw, sim, how):  # type: ignore[no-untyped-def]
    t = token()
    key, model, headers = KEY, "gpt-4o", {}
    if how == "suffix":
        key = KEY + "/{'is_cache': 0, 'app_name': 'DSPY'}"
    elif how == "header":
        headers = {"x-lmgate-cache": "0"}
    elif how in ("no-cache", "no-store"):
        headers = {"Cache-Control": how}
    elif how == "key default":
        key = NOCACHE_KEY
    else:
        model = "fresh"
    c = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=key, max_retries=0, default_headers=headers)
    for _ in range(2):
        raw = c.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": f"bypass {t}"}])
        assert raw.headers["x-lmgate-cache"] == "off"
    assert upstream_calls(sim, t) == 2


def test_a_request_can_turn_on_what_a_key_default_turns_off(gw, sim):  # type: ignore[no-untyped-def]
    t = token()
    c = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=NOCACHE_KEY + '/{"is_cache": 1}', max_retries=0)
    heads = [c.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": f"on {t}"}]).headers["x-lmgate-cache"] for _ in range(2)]
    assert heads == ["miss", "hit"] and upstream_calls(sim, t) == 1


def _stream(client, content: str, **more):  # type: ignore[no-untyped-def]
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": content}], stream=True, **more)
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    return raw.headers["x-lmgate-cache"], text, finish, chunks


def test_streamed_answers_replay_equal_in_content(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    h1, text1, fin1, _ = _stream(client, f"stream me a story {t} [[sim: tokens=60]]")
    h2, text2, fin2, chunks = _stream(client, f"stream me a story {t} [[sim: tokens=60]]", stream_options={"include_usage": True})
    assert (h1, h2) == ("miss", "hit") and text1 == text2 and len(text1) > 100 and fin1 == fin2 == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.model_extra["estimated_cost"] == 0
    whole = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": f"stream me a story {t} [[sim: tokens=60]]"}])
    assert whole.headers["x-lmgate-cache"] == "hit" and whole.parse().choices[0].message.content == text1
    assert upstream_calls(sim, t) == 1


def test_a_whole_answer_is_replayed_as_a_stream(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    whole = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"whole first {t}"}])
    head, text, finish, _ = _stream(client, f"whole first {t}")
    assert head == "hit" and text == whole.choices[0].message.content and finish == ["stop"]


def test_tool_calls_are_cached_and_replayed(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    content = f'weather in Bern {t} [[sim: tool=weather args={{"city": "Bern"}}]]'
    first = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}], tools=tools)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": content}], tools=tools, stream=True)
    chunks = list(raw.parse())
    args = "".join(tc.function.arguments or "" for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or []))
    assert raw.headers["x-lmgate-cache"] == "hit"
    assert json.loads(args) == json.loads(first.choices[0].message.tool_calls[0].function.arguments) == {"city": "Bern"}
    assert upstream_calls(sim, t) == 1


def test_concurrent_identical_requests_make_one_upstream_call(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    content = f"slow question {t} [[sim: delay_ms=400]]"
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": content}]), range(6)))
    assert upstream_calls(sim, t) == 1
    assert len({a.parse().choices[0].message.content for a in answers}) == 1
    assert sorted(a.headers["x-lmgate-cache"] for a in answers) == ["hit"] * 5 + ["miss"]


def test_concurrent_identical_streams_make_one_upstream_call(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    content = f"slow stream {t} [[sim: chunk_delay_ms=30 tokens=20]]"
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: _stream(client, content), range(5)))
    assert upstream_calls(sim, t) == 1
    assert len({text for _, text, _, _ in results}) == 1 and sorted(h for h, *_ in results) == ["hit"] * 4 + ["miss"]


def test_failures_are_not_cached(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"fail {t} [[sim: status=500]]"}])
    assert upstream_calls(sim, t) == 2


def test_cut_streams_are_not_cached(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    content = f"cut me {t} [[sim: cut_after=3 tokens=40]]"
    for _ in range(2):  # the second one reaches the upstream again: the cut answer was not stored
        with pytest.raises(Exception):
            _stream(client, content)
    assert upstream_calls(sim, t) == 2


def test_the_same_question_through_three_surfaces_hits_one_entry(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    question = f"What is the capital of France? {t}"
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": question}], max_tokens=50
    )
    assert first.headers["x-lmgate-cache"] == "miss"
    expected = first.parse().choices[0].message.content
    claude = anthropic.Anthropic(base_url=gw.base_url, api_key=KEY, max_retries=0)
    raw = claude.messages.with_raw_response.create(
        model="gpt-4o", system="Answer briefly.", messages=[{"role": "user", "content": question}], max_tokens=50
    )
    assert raw.headers["x-lmgate-cache"] == "hit" and raw.parse().content[0].text == expected
    gem = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=gw.base_url))
    answer = gem.models.generate_content(
        model="gpt-4o", contents=question,
        config=genai_types.GenerateContentConfig(system_instruction="Answer briefly.", max_output_tokens=50),
    )
    assert answer.text == expected
    # and a streamed Anthropic request replays in Anthropic's own framing
    with claude.messages.stream(model="gpt-4o", system="Answer briefly.", messages=[{"role": "user", "content": question}], max_tokens=50) as s:
        streamed = "".join(s.text_stream)
    assert streamed == expected
    assert upstream_calls(sim, t) == 1


def test_embeddings_are_cached(gw, client, sim):  # type: ignore[no-untyped-def]
    t = token()
    first = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=[f"one {t}", "two"])
    second = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=[f"one {t}", "two"], encoding_format="base64")
    assert (first.headers["x-lmgate-cache"], second.headers["x-lmgate-cache"]) == ("miss", "hit")
    a, b = first.parse(), second.parse()
    decoded = [list(struct.unpack(f"<{len(base64.b64decode(d.embedding)) // 4}f", base64.b64decode(d.embedding))) for d in b.data]
    assert len(decoded) == 2 and all(x == pytest.approx(y, abs=1e-6) for x, y in zip(a.data[0].embedding, decoded[0]))
    assert upstream_calls(sim, t, "/embeddings") == 1


# ---------------------------------------------------------------- Redis


@needs_redis
def test_redis_backend_is_shared_by_instances(sim):  # type: ignore[no-untyped-def]
    from lmgate.testing import start_gateway

    prefix = f"lmgate:test:{uuid.uuid4().hex}:"
    cfg = config(sim, f"redis: {REDIS_URL}\ncache: {{prefix: '{prefix}'}}")
    a, b = start_gateway(cfg), start_gateway(cfg)
    try:
        t = token()
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"shared {t}"}]}
        h = {"authorization": f"Bearer {KEY}"}
        r1 = requests.post(a.base_url + "/v1/chat/completions", json=body, headers=h)
        r2 = requests.post(b.base_url + "/v1/chat/completions", json=body, headers=h)
        assert (r1.headers["x-lmgate-cache"], r2.headers["x-lmgate-cache"]) == ("miss", "hit")
        content = [r.json()["choices"][0]["message"]["content"] for r in (r1, r2)]
        assert content[0] == content[1] and upstream_calls(sim, t) == 1
        # concurrent identical requests on two instances: one upstream call (the Redis lock)
        t = token()
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"shared slow {t} [[sim: delay_ms=500]]"}]}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            rs = list(pool.map(lambda g: requests.post(g.base_url + "/v1/chat/completions", json=body, headers=h), [a, b, a, b]))
        assert all(r.status_code == 200 for r in rs) and upstream_calls(sim, t) == 1
    finally:
        a.stop()
        b.stop()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
