"""The vertex provider: a service account made in the test, its token_uri pointing at the
simulator's OAuth endpoint, Gemini on Vertex behind the gateway."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json

import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lmgate.errors import ConfigError
from lmgate.testing import start_gateway

KEY = "sk-test-vertex-provider"


def service_account(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return json.dumps({
        "type": "service_account", "project_id": "proj-from-key", "private_key_id": "k1", "private_key": pem,
        "client_email": "lmgate@proj-from-key.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri,
    })


@pytest.fixture(scope="module")
def account(sim, tmp_path_factory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("sa") / "sa.json"
    path.write_text(service_account(sim.base_url + "/token"))
    return path


@pytest.fixture(scope="module")
def gw(sim, account):  # type: ignore[no-untyped-def]
    config = f"""
providers:
  vx: {{type: vertex, base_url: "{sim.base_url}", credentials_file: "{account}", project: my-proj, location: europe-west4}}
  vx-default: {{type: vertex, base_url: "{sim.base_url}", credentials_file: "{account}"}}
models:
  - name: gemini-1.5-flash
    deployments: [{{provider: vx, model: gemini-1.5-flash-002}}]
  - name: gemini-default
    deployments: [{{provider: vx-default, model: gemini-2.5-flash}}]
  - name: text-embedding-005
    kind: embedding
    deployments: [{{provider: vx, model: text-embedding-005}}]
  - name: gemini-embedding-001
    kind: embedding
    deployments: [{{provider: vx, model: gemini-embedding-001}}]
keys:
  - {{key: {KEY}, name: main}}
router: {{retries: 1, backoff_s: 0}}
"""
    g = start_gateway(config, steps=[])
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)


PATH = "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-1.5-flash-002"


def test_token_fetched_once_then_reused_and_refreshed_when_expired(gw, client, sim):  # type: ignore[no-untyped-def]
    tokens = gw.app.providers["vx"].tokens
    before = len(sim.requests("/token"))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # concurrent first calls: one refresh
        answers = list(pool.map(lambda i: client.chat.completions.create(model="gemini-1.5-flash", messages=[{"role": "user", "content": f"hi {i}"}]), range(4)))
    assert all("Simulated reply" in a.choices[0].message.content for a in answers)
    client.chat.completions.create(model="gemini-1.5-flash", messages=[{"role": "user", "content": "again"}])
    assert len(sim.requests("/token")) - before == 1
    grant = sim.requests("/token")[-1]["body"]
    assert grant["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    sent = sim.requests(PATH + ":generateContent")[-1]
    assert sent["headers"]["authorization"].startswith("Bearer ya29.sim-")
    tokens._creds.expiry = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)
    client.chat.completions.create(model="gemini-1.5-flash", messages=[{"role": "user", "content": "after expiry"}])
    assert len(sim.requests("/token")) - before == 2


def test_a_refused_token_is_dropped_and_the_retry_fetches_a_new_one(gw, client, sim):  # type: ignore[no-untyped-def]
    tokens = gw.app.providers["vx"].tokens
    client.chat.completions.create(model="gemini-1.5-flash", messages=[{"role": "user", "content": "warm"}])
    before = len(sim.requests("/token"))
    tokens._creds.token = "ya29.revoked-token"  # the simulator does not know it: 401
    r = client.chat.completions.create(model="gemini-1.5-flash", messages=[{"role": "user", "content": "after revocation"}])
    assert "Simulated reply" in r.choices[0].message.content
    assert len(sim.requests("/token")) - before == 1


def test_vertex_paths_stream_and_project_from_the_key(client, sim):  # type: ignore[no-untyped-def]
    chunks = list(client.chat.completions.create(model="gemini-1.5-flash", stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "stream on vertex"}]))
    assert 'you said "stream on vertex"' in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens > 0 and chunks[-1].usage.model_extra["estimated_cost"] > 0
    assert sim.requests(PATH + ":streamGenerateContent")[-1]["query"] == {"alt": "sse"}
    client.chat.completions.create(model="gemini-default", messages=[{"role": "user", "content": "defaults"}])
    assert sim.requests("/v1/projects/proj-from-key/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent")


def test_embeddings_through_predict(client, sim):  # type: ignore[no-untyped-def]
    texts = [f"passage {i}" for i in range(3)]
    e = client.embeddings.create(model="text-embedding-005", input=texts, extra_body={"input_type": "search_document"})
    assert len(e.data) == 3 and len(e.data[0].embedding) == 768 and e.usage.prompt_tokens > 0
    sent = sim.requests("/models/text-embedding-005:predict")[-1]["body"]
    assert sent["instances"][0] == {"content": "passage 0", "task_type": "RETRIEVAL_DOCUMENT"}
    before = len(sim.requests("/models/gemini-embedding-001:predict"))
    client.embeddings.create(model="gemini-embedding-001", input=texts, dimensions=8)
    calls = sim.requests("/models/gemini-embedding-001:predict")[before:]
    assert len(calls) == 3 and all(len(c["body"]["instances"]) == 1 for c in calls)  # one instance a call
    assert calls[0]["body"]["parameters"] == {"outputDimensionality": 8}


def test_bad_credentials_are_refused_at_start(tmp_path):  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "authorized_user"}))
    config = f"""
providers:
  vx: {{type: vertex, credentials_file: "{bad}", project: p}}
models:
  - name: m
    deployments: [{{provider: vx, model: gemini-2.5-flash}}]
"""
    with pytest.raises(ConfigError):
        start_gateway(config, steps=[])
