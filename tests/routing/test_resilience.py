"""Routing and resilience end to end: the openai SDK and requests against a gateway whose deployments
point at the provider simulator (fault knobs in base_url prefixes and prompts) or a tiny fake upstream."""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid

import openai
import pytest
import requests

from ledger_helpers import start_ledger_gateway
from routing_upstream import Upstream

KEY = "sk-test-routing-key"
MASTER = "mk-test-routing-master"
RUN = uuid.uuid4().hex[:8]  # keeps this run's fail_first counters apart in the shared simulator

CONFIG = """
master_key: {master}
providers:
  sim: {{type: openai, base_url: "{sim}/v1", api_key: sk-sim-123456}}
  bad: {{type: openai, base_url: "{sim}/_sim/status=500,id=bad-{run}/v1", api_key: sk-sim-123456}}
  bad503: {{type: openai, base_url: "{sim}/_sim/status=503,id=bad503-{run}/v1", api_key: sk-sim-123456}}
  t429: {{type: openai, base_url: "{sim}/_sim/status=429,retry_after=30,id=t429-{run}/v1", api_key: sk-sim-123456}}
  t429b: {{type: openai, base_url: "{sim}/_sim/status=429,retry_after=30,id=t429b-{run}/v1", api_key: sk-sim-123456}}
  hang: {{type: openai, base_url: "{sim}/_sim/delay_ms=20000,id=hang-{run}/v1", api_key: sk-sim-123456, timeout: 0.4}}
  cut0: {{type: openai, base_url: "{sim}/_sim/cut_after=0,id=cut0-{run}/v1", api_key: sk-sim-123456}}
  capA: {{type: openai, base_url: "{sim}/_sim/id=capA-{run}/v1", api_key: sk-sim-123456}}
  capB: {{type: openai, base_url: "{sim}/_sim/id=capB-{run}/v1", api_key: sk-sim-123456}}
  filter: {{type: openai, base_url: "{sim}/_sim/status=400,error=content_filter,id=filter-{run}/v1", api_key: sk-sim-123456}}
  toolong: {{type: openai, base_url: "{sim}/_sim/status=400,error=context_length_exceeded,id=toolong-{run}/v1", api_key: sk-sim-123456}}
  err0: {{type: openai, base_url: "{sim}/_sim/error_after=0,id=err0-{run}/v1", api_key: sk-sim-123456}}
  slow: {{type: openai, base_url: "{up}/slow/v1", api_key: sk-up-123456}}
models:
  - name: mixed
    deployments:
      - {{provider: bad, model: gpt-4o, name: broken-east, weight: 1000}}
      - {{provider: sim, model: gpt-4o, name: good-west, weight: 1}}
  - name: throttled-pair
    deployments:
      - {{provider: t429, model: gpt-4o, name: busy, weight: 1000}}
      - {{provider: sim, model: gpt-4o, name: calm, weight: 1}}
  - name: throttled-only
    deployments: [{{provider: t429b, model: gpt-4o}}]
  - name: hanging
    deployments: [{{provider: hang, model: gpt-4o}}]
  - name: primary
    deployments: [{{provider: bad, model: gpt-4o}}]
    fallbacks: [second, third, fourth]
  - name: second
    deployments: [{{provider: bad503, model: gpt-4o}}]
  - name: third
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: fourth
    deployments: [{{provider: sim, model: gpt-4o}}]
  - name: small
    deployments: [{{provider: sim, model: small-upstream-{run}}}]
    context_window: 60
    context_fallbacks: [big]
  - name: big
    deployments: [{{provider: sim, model: big-upstream-{run}}}]
    context_window: 100000
  - name: mid
    deployments: [{{provider: toolong, model: gpt-4o}}]
    context_fallbacks: [big]
    fallbacks: [plain]
  - name: strict
    deployments: [{{provider: filter, model: gpt-4o}}]
    content_filter_fallbacks: [lenient]
  - name: lenient
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: plain
    deployments: [{{provider: sim, model: gpt-4o}}]
  - name: cutfirst
    deployments:
      - {{provider: cut0, model: gpt-4o, name: cutter, weight: 1000}}
      - {{provider: sim, model: gpt-4o, name: whole}}
  - name: errfirst
    deployments:
      - {{provider: err0, model: gpt-4o, name: erring, weight: 1000}}
      - {{provider: sim, model: gpt-4o, name: fine}}
  - name: slowstream
    deployments: [{{provider: slow, model: gpt-4o}}]
  - name: capped
    deployments:
      - {{provider: capA, model: gpt-4o, rpm: 3}}
      - {{provider: capB, model: gpt-4o, rpm: 2}}
keys:
  - {{key: {key}, name: routing}}
router: {{retries: 2, backoff_s: 0, allowed_fails: 3, cooldown_s: 30, stream_idle_timeout: 0.5, timeout: 10}}
server: {{default_cache: false, default_guard: 0}}
"""


@pytest.fixture(scope="module")
def upstream():  # type: ignore[no-untyped-def]
    up = Upstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(sim, upstream):  # type: ignore[no-untyped-def]
    g = start_ledger_gateway(CONFIG.format(sim=sim.base_url, up=upstream.base_url, run=RUN, key=KEY, master=MASTER))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)


def record(gw, request_id: str):  # type: ignore[no-untyped-def]
    """The one ledger record of a request (waits for it; fails if there are two)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [r for r in list(gw.ledger.records) if r.request_id == request_id]
        if found:
            time.sleep(0.05)
            found = [r for r in list(gw.ledger.records) if r.request_id == request_id]
            assert len(found) == 1, "accounted more than once"
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no ledger record for {request_id}")


def sim_calls(sim, marker: str) -> int:  # type: ignore[no-untyped-def]
    return len(sim.requests(f"{marker}-{RUN}"))


def health(gw) -> dict:  # type: ignore[no-untyped-def]
    r = requests.get(gw.base_url + "/admin/health", headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 200
    return {m["name"]: m for m in r.json()["models"]}


def chat(gw, model: str, content: str = "hello", **body) -> requests.Response:  # type: ignore[no-untyped-def]
    return requests.post(
        gw.base_url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}], **body},
        headers={"authorization": f"Bearer {KEY}"},
        stream=bool(body.get("stream")),
        timeout=30,
    )


def sse_payloads(resp: requests.Response) -> list[str]:
    return [line[6:] for line in resp.iter_lines(decode_unicode=True) if line and line.startswith("data: ")]


# ---------------------------------------------------------------- retries on another deployment


def test_500_on_one_deployment_then_success_on_another(gw, sim, client):  # type: ignore[no-untyped-def]
    raws = [client.chat.completions.with_raw_response.create(model="mixed", messages=[{"role": "user", "content": "hi"}]) for _ in range(5)]
    assert all(r.headers["x-lmgate-deployment"] == "good-west" for r in raws)
    assert all(r.parse().choices[0].message.content for r in raws)
    recs = [record(gw, r.headers["x-request-id"]) for r in raws]
    failed_first = [r for r in recs if len(r.attempts) == 2]
    assert failed_first, "the 1000:1 weight sends the first request to the broken deployment"
    a = failed_first[0].attempts
    assert [x["deployment"] for x in a] == ["broken-east", "good-west"] and [x["status"] for x in a] == [502, 200]
    assert all(x["latency_ms"] >= 0 for x in a)
    # at most allowed_fails (3) calls reached the broken deployment before it was cooled down
    assert 1 <= sim_calls(sim, "bad") <= 3


def test_429_with_retry_after_goes_elsewhere_and_is_not_retried_early(gw, sim, client):  # type: ignore[no-untyped-def]
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(model="throttled-pair", messages=[{"role": "user", "content": "hi"}])
        assert raw.headers["x-lmgate-deployment"] == "calm"
    assert sim_calls(sim, "t429") == 1  # Retry-After: 30 -> never called again within 30 s
    state = {d["name"]: d for d in health(gw)["throttled-pair"]["deployments"]}
    assert state["busy"]["state"] == "throttled" and 25 < state["busy"]["retry_after_s"] <= 30


def test_429_with_long_retry_after_fails_fast_with_retry_after(gw, sim, client):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as err:
            client.chat.completions.create(model="throttled-only", messages=[{"role": "user", "content": "hi"}])
        assert 28 <= int(err.value.response.headers["retry-after"]) <= 30
    assert time.monotonic() - started < 5  # no waiting for 30 s
    assert sim_calls(sim, "t429b") == 1


def test_hanging_upstream_ends_in_504_within_the_timeout(gw, client):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="hanging", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 504
    assert time.monotonic() - started < 6  # 3 attempts x 0.4 s, with a generous margin
    rec = record(gw, err.value.response.headers["x-request-id"])
    assert rec.status == 504 and {a["status"] for a in rec.attempts} == {504}
    # a stream's first byte is bounded the same way, and fails before any byte is sent
    started = time.monotonic()
    r = chat(gw, "hanging", stream=True)
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 6


# ---------------------------------------------------------------- fallbacks


def test_fallbacks_in_order_and_headers_name_the_server(gw, client):  # type: ignore[no-untyped-def]
    raw = client.chat.completions.with_raw_response.create(model="primary", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-lmgate-model"] == "third"
    assert raw.headers["x-lmgate-deployment"] == "sim/gpt-4o-mini"
    rec = record(gw, raw.headers["x-request-id"])
    assert [(a["deployment"], a["status"]) for a in rec.attempts] == [("bad/gpt-4o", 502), ("bad503/gpt-4o", 503), ("sim/gpt-4o-mini", 200)]
    assert rec.model == "primary" and rec.served_model == "third" and rec.status == 200
    assert rec.cost_usd > 0  # priced as the model that served it
    r = chat(gw, "primary", "hi again", stream=True)  # streamed: the same chain, before any byte is sent
    assert r.status_code == 200 and r.headers["x-lmgate-model"] == "third"
    assert sse_payloads(r)[-1] == "[DONE]"


def test_context_fallback_skips_the_small_model(gw, sim, client):  # type: ignore[no-untyped-def]
    short = client.chat.completions.with_raw_response.create(model="small", messages=[{"role": "user", "content": "hi"}])
    assert short.headers["x-lmgate-model"] == "small"
    long_prompt = "please summarise this " + "word " * 400
    raw = client.chat.completions.with_raw_response.create(model="small", messages=[{"role": "user", "content": long_prompt}])
    assert raw.headers["x-lmgate-model"] == "big" and raw.parse().choices[0].message.content
    models_called = [r["body"]["model"] for r in sim.requests("/chat/completions") if isinstance(r.get("body"), dict)]
    assert models_called.count(f"small-upstream-{RUN}") == 1  # only the short prompt went to the small model
    # streamed, too
    r = chat(gw, "small", long_prompt, stream=True)
    assert r.status_code == 200 and r.headers["x-lmgate-model"] == "big"
    assert sse_payloads(r)[-1] == "[DONE]"


def test_context_error_from_the_upstream_goes_to_the_context_fallback(gw, client):  # type: ignore[no-untyped-def]
    raw = client.chat.completions.with_raw_response.create(model="mid", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-lmgate-model"] == "big"  # not the ordinary fallback
    rec = record(gw, raw.headers["x-request-id"])
    assert [(a["status"], a["error"]) for a in rec.attempts] == [(400, "context_length_exceeded"), (200, None)]


def test_content_filter_fallback(gw, client):  # type: ignore[no-untyped-def]
    raw = client.chat.completions.with_raw_response.create(model="strict", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-lmgate-model"] == "lenient"
    rec = record(gw, raw.headers["x-request-id"])
    assert [(a["status"], a["error"]) for a in rec.attempts] == [(400, "content_filter"), (200, None)]
    strict = {d["name"]: d for d in health(gw)["strict"]["deployments"]}
    assert strict["filter/gpt-4o"]["failures"] == 0 and strict["filter/gpt-4o"]["state"] == "healthy"  # a client error never counts against a deployment


# ---------------------------------------------------------------- streams


def test_cut_stream_ends_in_an_error_event_without_done(gw):  # type: ignore[no-untyped-def]
    r = chat(gw, "plain", "[[sim: cut_after=3 tokens=40]] tell me", stream=True)
    assert r.status_code == 200
    payloads = sse_payloads(r)
    assert "[DONE]" not in payloads
    assert len(payloads) >= 2
    assert json.loads(payloads[-1])["error"]["code"] == "upstream_error"
    rec = record(gw, r.headers["x-request-id"])
    assert rec.status == 502 and rec.attempts[-1]["status"] == 502


def test_stream_failing_before_its_first_chunk_is_retried_elsewhere(gw, sim):  # type: ignore[no-untyped-def]
    r = chat(gw, "cutfirst", "hi", stream=True)
    assert r.status_code == 200 and r.headers["x-lmgate-deployment"] == "whole"
    assert sse_payloads(r)[-1] == "[DONE]"
    rec = record(gw, r.headers["x-request-id"])
    assert [(a["deployment"], a["status"]) for a in rec.attempts] == [("cutter", 502), ("whole", 200)]


def test_in_stream_error_after_the_first_chunk_is_an_error_event(gw):  # type: ignore[no-untyped-def]
    r = chat(gw, "plain", "[[sim: error_after=3 tokens=40]] tell me", stream=True)
    assert r.status_code == 200
    payloads = sse_payloads(r)
    assert "[DONE]" not in payloads and len(payloads) >= 2
    assert json.loads(payloads[-1])["error"]["code"] == "upstream_error"
    assert record(gw, r.headers["x-request-id"]).status == 502


def test_in_stream_error_before_the_first_chunk_is_retried_elsewhere(gw):  # type: ignore[no-untyped-def]
    r = chat(gw, "errfirst", "hi", stream=True)
    assert r.status_code == 200 and r.headers["x-lmgate-deployment"] == "fine"
    assert sse_payloads(r)[-1] == "[DONE]"
    rec = record(gw, r.headers["x-request-id"])
    assert [(a["deployment"], a["status"]) for a in rec.attempts] == [("erring", 502), ("fine", 200)]


def test_silent_stream_is_ended_by_the_idle_timeout(gw):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    r = chat(gw, "plain", "[[sim: stall_after=2 tokens=40]] tell me", stream=True)
    payloads = sse_payloads(r)
    assert time.monotonic() - started < 8  # idle timeout 0.5 s, generous bound
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["error"]["code"] == "upstream_timeout"
    assert record(gw, r.headers["x-request-id"]).status == 504


def test_client_disconnect_cancels_the_upstream_call(gw, upstream):  # type: ignore[no-untyped-def]
    before = len(upstream.slow.dropped_at)
    r = chat(gw, "slowstream", "hi", stream=True)
    lines = r.iter_lines()
    got = [next(lines) for _ in range(4)]
    assert any(line.startswith(b"data: ") for line in got)
    request_id = r.headers["x-request-id"]
    r.close()  # the client hangs up mid-stream
    deadline = time.monotonic() + 5
    while len(upstream.slow.dropped_at) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(upstream.slow.dropped_at) == before + 1, "the upstream connection was not closed"
    assert upstream.slow.finished == 0
    rec = record(gw, request_id)
    assert rec.status == 499 and rec.error_code == "client_closed"
    assert rec.attempts[-1]["status"] == 499
    dep = health(gw)["slowstream"]["deployments"][0]
    assert dep["in_flight"] == 0 and dep["failures"] == 0


# ---------------------------------------------------------------- capacity


def test_deployment_rpm_never_exceeded_under_a_burst(gw, sim):  # type: ignore[no-untyped-def]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: chat(gw, "capped", "burst"), range(12)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 5 + [429] * 7
    refused = [r for r in results if r.status_code == 429]
    assert all(r.json()["error"]["code"] == "capacity_exhausted" and int(r.headers["retry-after"]) >= 1 for r in refused)
    assert sim_calls(sim, "capA") == 3 and sim_calls(sim, "capB") == 2
    caps = {d["name"]: d for d in health(gw)["capped"]["deployments"]}
    assert caps["capA/gpt-4o"]["rpm"] == {"limit": 3, "used": 3}


# ---------------------------------------------------------------- admin


def test_admin_health_needs_the_master_key(gw):  # type: ignore[no-untyped-def]
    assert requests.get(gw.base_url + "/admin/health").status_code == 401
    assert requests.get(gw.base_url + "/admin/health", headers={"authorization": f"Bearer {KEY}"}).status_code == 401
    models = health(gw)
    plain = models["plain"]
    assert plain["strategy"] == "weighted"
    d = plain["deployments"][0]
    assert {"name", "provider", "model", "state", "in_flight", "recent_failures", "cooldown_remaining_s", "latency_ms"} <= set(d)
