"""The cohere provider: embed v2 behind the OpenAI surface, as 003 uses it (input_type, 96 a call)."""

from __future__ import annotations

import base64
import struct

import openai
import orjson
import pytest
import requests

from lmgate.providers.cohere import parse_error
from lmgate.providers.http import map_failure
from lmgate.simulator.answer import count_tokens
from lmgate.testing import start_gateway

KEY = "sk-test-cohere-provider"
SECRET = "cohere-upstream-secret-123456"


@pytest.fixture(scope="module")
def gw(sim):  # type: ignore[no-untyped-def]
    config = f"""
providers:
  co: {{type: cohere, base_url: "{sim.base_url}", api_key: "{SECRET}"}}
  co-bad: {{type: cohere, base_url: "{sim.base_url}", api_key: "invalid-cohere-key"}}
models:
  - name: cohere_english_v3
    deployments: [{{provider: co, model: embed-english-v3.0}}]
  - name: cohere-bad
    kind: embedding
    deployments: [{{provider: co-bad, model: embed-english-v3.0}}]
keys:
  - {{key: {KEY}, name: main}}
router: {{retries: 0}}
"""
    g = start_gateway(config, steps=[])
    yield g
    g.stop()


def test_003_request_with_input_type(gw, sim):  # type: ignore[no-untyped-def]
    request = {"model": "cohere_english_v3", "encodingFormat": "float", "input_type": "search_document",
               "input": ["Sweet is the breath of morn, her rising sweet", "With Midnight to the North of Her"]}
    r = requests.post(gw.base_url + "/api/v1/embeddings", json=request, headers={"authorization": f"Bearer {KEY}", "accept": "application/json"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert len(data) == 2 and len(data[0]["embedding"]) == 1024
    sent = sim.requests("/v2/embed")[-1]
    assert sent["headers"]["authorization"] == f"Bearer {SECRET}"
    assert sent["body"] == {"model": "embed-english-v3.0", "texts": request["input"], "input_type": "search_document", "embedding_types": ["float"]}
    assert r.json()["usage"]["prompt_tokens"] > 0


def test_200_inputs_make_3_concurrent_calls_rejoined_in_order(gw, sim):  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)
    texts = [f"headline number {i}" for i in range(200)]
    before = len(sim.requests("/v2/embed"))
    e = client.embeddings.create(model="cohere_english_v3", input=texts, extra_body={"input_type": "clustering"})
    calls = sim.requests("/v2/embed")[before:]
    assert sorted(len(c["body"]["texts"]) for c in calls) == [8, 96, 96]
    assert sorted(t for c in calls for t in c["body"]["texts"]) == sorted(texts)
    assert all(c["body"]["input_type"] == "clustering" for c in calls)
    assert [d.index for d in e.data] == list(range(200))
    for i in (0, 95, 96, 150, 199):  # each vector is the one its own text gets alone
        alone = client.embeddings.create(model="cohere_english_v3", input=texts[i], extra_body={"input_type": "clustering"})
        assert e.data[i].embedding == alone.data[0].embedding
    assert e.usage.prompt_tokens == sum(count_tokens(len(t)) for t in texts)  # billed units of the 3 calls, summed


def test_default_input_type_and_base64(gw, sim):  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)
    e = client.embeddings.create(model="cohere_english_v3", input="no type given", encoding_format="base64")
    raw = base64.b64decode(e.data[0].embedding)
    assert len(struct.unpack(f"<{len(raw) // 4}f", raw)) == 1024
    assert sim.requests("/v2/embed")[-1]["body"]["input_type"] == "search_document"


def test_errors(gw):  # type: ignore[no-untyped-def]
    r = requests.post(gw.base_url + "/v1/embeddings", json={"model": "cohere-bad", "input": "x"}, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_auth_error"
    err = map_failure(parse_error(400, orjson.dumps({"id": "1", "message": "too many tokens: size limit exceeded by 11326 tokens."}), {}), "co", str)
    assert err.code == "context_length_exceeded"
    err = map_failure(parse_error(498, orjson.dumps({"message": "invalid api token"}), {}), "co", str)
    assert err.code == "upstream_auth_error"
