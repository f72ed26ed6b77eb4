"""The cache step inside the real pipeline, with an in-process fake provider that counts upstream
calls exactly: hits and misses, streams both ways, failures and cut streams, single flight,
cross-protocol keys, precedence of the defaults, embeddings, and the semantic cache."""

from __future__ import annotations

import asyncio

import pytest

from lmgate.errors import GuardrailViolation, StreamInterrupted, UpstreamError
from lmgate.policy.cache import CacheStep
from lmgate.types import EmbeddingRequest, KeyRecord, Options, StreamFinish, StreamUsage, TextDelta
from lmgate.wire import anthropic, gemini
from lmgate.wire import openai as openai_wire

from policy_fakes import chat_req, collect, fake_gateway, make_ctx, stream_text


def cache_step(gw) -> CacheStep:  # type: ignore[no-untyped-def]
    return next(s for s in gw.steps if isinstance(s, CacheStep))


async def test_miss_then_hit_costs_nothing_and_reports_the_saving():
    gw, fake, ledger = fake_gateway()
    c1, c2 = make_ctx(), make_ctx()
    a1 = await gw.pipeline.chat(c1, chat_req("hi"))
    a2 = await gw.pipeline.chat(c2, chat_req("hi"))
    assert fake.calls == 1
    assert (c1.cache_status, c2.cache_status) == ("miss", "hit")
    assert a1.cost_usd == pytest.approx(10e-6 + 5 * 2e-6) and a2.cost_usd == 0
    assert c2.cache_saved_usd == pytest.approx(a1.cost_usd)
    assert a2.choices[0].message.text() == a1.choices[0].message.text() == "answer to: hi"
    assert a2.usage.output_tokens == 5
    r1, r2 = ledger.records
    assert (r1.cache_hit, r2.cache_hit, r2.cost_usd) == (False, True, 0.0) and r2.cache_saved_usd == pytest.approx(a1.cost_usd)


async def test_stream_is_stored_and_replayed_both_ways():
    gw, fake, _ = fake_gateway()
    first = await collect(await gw.pipeline.chat_stream(make_ctx(), chat_req("tell me", stream=True)))
    c = make_ctx()
    whole = await gw.pipeline.chat(c, chat_req("tell me"))
    assert c.cache_status == "hit" and fake.calls == 1
    assert whole.choices[0].message.text() == stream_text(first) == "answer to: tell me"
    c = make_ctx()
    again = await collect(await gw.pipeline.chat_stream(c, chat_req("tell me", stream=True)))
    assert c.cache_status == "hit" and fake.calls == 1
    assert stream_text(again) == stream_text(first)
    assert isinstance(again[-2], StreamFinish) and isinstance(again[-1], StreamUsage) and again[-1].cost_usd == 0
    # a whole answer replayed as a stream
    await gw.pipeline.chat(make_ctx(), chat_req("whole first"))
    c = make_ctx()
    replay = await collect(await gw.pipeline.chat_stream(c, chat_req("whole first", stream=True)))
    assert c.cache_status == "hit" and stream_text(replay) == "answer to: whole first" and fake.calls == 2
    assert any(isinstance(e, TextDelta) for e in replay)


async def test_same_format_raw_chunks_are_folded_too():
    gw, fake, _ = fake_gateway()
    fake.raw = True
    first = await collect(await gw.pipeline.chat_stream(make_ctx(), chat_req("raw", stream=True)))
    fake.raw = False
    c = make_ctx()
    answer = await gw.pipeline.chat(c, chat_req("raw"))
    assert c.cache_status == "hit" and answer.choices[0].message.text() == stream_text(first) == "answer to: raw"


async def test_failures_are_never_cached():
    gw, fake, _ = fake_gateway()
    fake.fail = UpstreamError("boom")
    with pytest.raises(UpstreamError):
        await gw.pipeline.chat(make_ctx(), chat_req("x"))
    fake.fail = None
    c = make_ctx()
    await gw.pipeline.chat(c, chat_req("x"))
    assert c.cache_status == "miss" and fake.calls == 2


async def test_cut_streams_and_filtered_answers_are_never_cached():
    gw, fake, _ = fake_gateway()
    fake.cut_after = 1
    with pytest.raises(StreamInterrupted):
        await collect(await gw.pipeline.chat_stream(make_ctx(), chat_req("a long answer please", stream=True)))
    fake.cut_after = None
    c = make_ctx()
    await gw.pipeline.chat(c, chat_req("a long answer please"))
    assert c.cache_status == "miss" and fake.calls == 2
    fake.finish = "content_filter"
    await gw.pipeline.chat(make_ctx(), chat_req("filtered"))
    c = make_ctx()
    await gw.pipeline.chat(c, chat_req("filtered"))
    assert c.cache_status == "miss" and fake.calls == 4


async def test_a_stream_the_client_abandons_is_not_cached():
    gw, fake, _ = fake_gateway()
    events = await gw.pipeline.chat_stream(make_ctx(), chat_req("abandoned answer", stream=True))
    await events.__anext__()
    await events.aclose()
    c = make_ctx()
    await gw.pipeline.chat(c, chat_req("abandoned answer"))
    assert c.cache_status == "miss" and fake.calls == 2


async def test_concurrent_identical_requests_make_one_upstream_call():
    gw, fake, _ = fake_gateway()
    fake.delay = 0.05
    ctxs = [make_ctx() for _ in range(8)]
    answers = await asyncio.gather(*(gw.pipeline.chat(c, chat_req("same")) for c in ctxs))
    assert fake.calls == 1
    assert {a.choices[0].message.text() for a in answers} == {"answer to: same"}
    assert sorted(c.cache_status for c in ctxs) == ["hit"] * 7 + ["miss"]


async def test_concurrent_identical_streams_make_one_upstream_call():
    gw, fake, _ = fake_gateway()
    fake.delay = 0.05

    async def one() -> str:
        return stream_text(await collect(await gw.pipeline.chat_stream(make_ctx(), chat_req("streamed same", stream=True))))

    texts = await asyncio.gather(*(one() for _ in range(6)))
    assert fake.calls == 1 and set(texts) == {"answer to: streamed same"}


async def test_waiters_go_upstream_when_the_leader_fails():
    gw, fake, _ = fake_gateway()
    fake.delay = 0.05
    fake.fail, fake.fail_times = UpstreamError("first call fails"), 1
    results = await asyncio.gather(*(gw.pipeline.chat(make_ctx(), chat_req("retry me")) for _ in range(5)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and fake.calls == 2  # the leader failed; one waiter led again, the rest hit


async def test_the_same_question_through_three_protocols_is_one_entry():
    gw, fake, _ = fake_gateway()
    ro = openai_wire.parse_chat_request({"model": "m", "messages": [{"role": "system", "content": "short"}, {"role": "user", "content": "capital of France?"}], "max_tokens": 64})
    ra = anthropic.parse_request({"model": "m", "system": "short", "messages": [{"role": "user", "content": "capital of France?"}], "max_tokens": 64})
    rg = gemini.parse_generate_request({"systemInstruction": {"parts": [{"text": "short"}]}, "contents": [{"role": "user", "parts": [{"text": "capital of France?"}]}], "generationConfig": {"maxOutputTokens": 64}}, "m")
    statuses = []
    for req in (ro, ra, rg):
        c = make_ctx()
        await gw.pipeline.chat(c, req)
        statuses.append(c.cache_status)
    assert statuses == ["miss", "hit", "hit"] and fake.calls == 1


async def test_options_off_means_no_lookup_and_no_store():
    gw, fake, _ = fake_gateway()
    c = make_ctx(cache=False, cache_set=True)
    await gw.pipeline.chat(c, chat_req("private"))
    assert c.cache_status == "off"
    c = make_ctx()
    await gw.pipeline.chat(c, chat_req("private"))
    assert c.cache_status == "miss" and fake.calls == 2


def test_precedence_of_request_key_model_and_gateway_defaults():
    gw, _, _ = fake_gateway()
    step = cache_step(gw)

    class Route:
        def __init__(self, cache):  # type: ignore[no-untyped-def]
            self.cache = cache

    def on(route_cache, key_cache=None, cache=True, cache_set=False):  # type: ignore[no-untyped-def]
        ctx = make_ctx(cache=cache, cache_set=cache_set)
        if key_cache is not None:
            ctx.key = KeyRecord("k", "k", "h", cache=key_cache)
            if not cache_set:
                ctx.options.cache = key_cache  # as resolve_options does
        return step.enabled_for(ctx, Route(route_cache))

    assert on(None) is True  # gateway default (004: on)
    assert on(None, cache=False) is False  # server.default_cache: false
    assert on(True, cache=False) is True  # the model turns it on over the gateway default
    assert on(False, cache=True, cache_set=True) is False  # the model's off is absolute
    assert on(True, key_cache=False) is False  # the key's default beats the model's
    assert on(None, key_cache=False, cache=True, cache_set=True) is True  # the request beats the key
    assert on(True, cache=False, cache_set=True) is False  # is_cache: 0 always wins over a default


async def test_model_and_config_switches():
    gw, fake, _ = fake_gateway()
    c = make_ctx(cache=True, cache_set=True)
    await gw.pipeline.chat(c, chat_req("x", model="nocache"))
    await gw.pipeline.chat(make_ctx(), chat_req("x", model="nocache"))
    assert c.cache_status == "off" and fake.calls == 2
    gw, fake, _ = fake_gateway("cache: {enabled: false}\n")
    c = make_ctx()
    await gw.pipeline.chat(c, chat_req("x"))
    await gw.pipeline.chat(make_ctx(), chat_req("x"))
    assert c.cache_status == "off" and fake.calls == 2


async def test_embeddings_are_cached():
    gw, fake, ledger = fake_gateway()
    c1, c2 = make_ctx("embeddings"), make_ctx("embeddings")
    a = await gw.pipeline.embed(c1, EmbeddingRequest("emb", ["one", "two"]))
    b = await gw.pipeline.embed(c2, EmbeddingRequest("emb", ["one", "two"]))
    assert fake.calls == 1 and (c1.cache_status, c2.cache_status) == ("miss", "hit")
    assert b.vectors == a.vectors and b.cost_usd == 0 and c2.cache_saved_usd == pytest.approx(a.cost_usd)
    c3 = make_ctx("embeddings")
    await gw.pipeline.embed(c3, EmbeddingRequest("emb", ["one"]))
    assert c3.cache_status == "miss" and fake.calls == 2


async def test_key_scope_keeps_tenants_apart():
    gw, fake, _ = fake_gateway("cache: {scope: key}\n")
    a, b, a2 = make_ctx(), make_ctx(), make_ctx()
    a.key, b.key, a2.key = KeyRecord("ka", "a", "h"), KeyRecord("kb", "b", "h"), KeyRecord("ka", "a", "h")
    for c in (a, b, a2):
        await gw.pipeline.chat(c, chat_req("shared question"))
    assert [c.cache_status for c in (a, b, a2)] == ["miss", "miss", "hit"] and fake.calls == 2


async def test_output_guardrail_blocks_are_not_cached_and_masks_apply_to_hits():
    gw, fake, _ = fake_gateway("guardrails: {words: {words: [forbidden], input: false}, pii: {action: mask}}\n")
    fake.text = "a forbidden answer"
    with pytest.raises(GuardrailViolation):
        await gw.pipeline.chat(make_ctx(guard=2), chat_req("q1"))
    c = make_ctx(guard=1)
    await gw.pipeline.chat(c, chat_req("q1"))
    assert c.cache_status == "miss" and fake.calls == 2  # the blocked answer was not stored
    # an answer stored raw is masked for a guard-2 caller and raw for a guard-1 caller
    fake.text = "write to ann@example.org"
    await gw.pipeline.chat(make_ctx(guard=1), chat_req("q2"))
    c2 = make_ctx(guard=2)
    masked = await gw.pipeline.chat(c2, chat_req("q2"))
    assert c2.cache_status == "hit" and masked.choices[0].message.text() == "write to [EMAIL]"
    plain = await gw.pipeline.chat(make_ctx(guard=1), chat_req("q2"))
    assert plain.choices[0].message.text() == "write to ann@example.org"


# ---------------------------------------------------------------- semantic cache, gateway embedder

SEMANTIC = """
cache:
  semantic: {models: [m], threshold: 0.95, embedding_model: emb}
"""


async def test_semantic_hit_above_and_miss_below_the_threshold():
    gw, fake, ledger = fake_gateway(SEMANTIC)
    fake.vectors = {
        "What is the capital of France?": [1.0, 0.0, 0.0],
        "Capital of France?": [0.96, 0.28, 0.0],  # cosine 0.96
        "How do I bake bread?": [0.5, 0.866, 0.0],  # cosine 0.5
    }
    c1 = make_ctx()
    a1 = await gw.pipeline.chat(c1, chat_req("What is the capital of France?"))
    assert c1.cache_status == "miss"
    c2 = make_ctx()
    a2 = await gw.pipeline.chat(c2, chat_req("Capital of France?"))
    assert c2.cache_status == "hit" and a2.choices[0].message.text() == a1.choices[0].message.text()
    assert c2.response_headers["x-lmgate-cache-similarity"] == "0.9600"
    c3 = make_ctx()
    await gw.pipeline.chat(c3, chat_req("How do I bake bread?"))
    assert c3.cache_status == "miss" and "x-lmgate-cache-similarity" not in c3.response_headers
    # the embedding calls went through the gateway itself and are in the ledger
    assert [r.surface for r in ledger.records].count("internal") == 3
    # another model or other parameters never match semantically
    c4 = make_ctx()
    await gw.pipeline.chat(c4, chat_req("Capital of France?", max_tokens=5))
    assert c4.cache_status == "miss"


async def test_semantic_streams_replay_too():
    gw, fake, _ = fake_gateway(SEMANTIC)
    fake.vectors = {"Hello there": [1.0, 0.0, 0.0], "Hello there!": [0.99, 0.141, 0.0]}
    await gw.pipeline.chat(make_ctx(), chat_req("Hello there"))
    c = make_ctx()
    events = await collect(await gw.pipeline.chat_stream(c, chat_req("Hello there!", stream=True)))
    assert c.cache_status == "hit" and stream_text(events) == "answer to: Hello there"


async def test_semantic_embedding_failure_is_a_plain_miss():
    gw, fake, _ = fake_gateway(SEMANTIC)
    original = fake.embed

    async def broken(req, call):  # type: ignore[no-untyped-def]
        raise UpstreamError("embeddings down")

    fake.embed = broken  # type: ignore[method-assign]
    c = make_ctx()
    answer = await gw.pipeline.chat(c, chat_req("still answered"))
    assert c.cache_status == "miss" and answer.choices[0].message.text() == "answer to: still answered"
    fake.embed = original  # type: ignore[method-assign]


def test_semantic_config_is_checked_at_start():
    from lmgate.errors import ConfigError

    with pytest.raises(ConfigError, match="not a configured model"):
        fake_gateway("cache: {semantic: {models: [nope], embedding_model: emb}}\n")
    with pytest.raises(ConfigError, match="embedding_model"):
        fake_gateway("cache: {semantic: {models: [m], embedding_model: m}}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        fake_gateway("cache: {ttl: 5}\n")
    with pytest.raises(ConfigError, match="redis"):
        fake_gateway("cache: {backend: redis}\n")
