"""Vertex AI Gemini behind the fake OAuth2 token endpoint, with real google-auth credentials."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import AuthorizedSession, Request
from google.genai import types
from google.oauth2 import service_account

from lmgate.simulator.testing import RunningSimulator

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PATH = "/v1/projects/sim-proj/locations/us-central1/publishers/google/models/{model}:{action}"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _info(simulator: RunningSimulator, key: rsa.RSAPrivateKey) -> dict[str, str]:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "sim-proj", "private_key_id": "k1",
            "private_key": pem, "client_email": "gateway@sim-proj.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": simulator.base_url + "/token"}


@pytest.fixture(scope="module")
def credentials(simulator: RunningSimulator, private_key: rsa.RSAPrivateKey
                ) -> service_account.Credentials:
    creds = service_account.Credentials.from_service_account_info(
        _info(simulator, private_key), scopes=[SCOPE])
    creds.refresh(Request())
    return creds


def test_google_auth_refresh_gets_a_token(credentials: service_account.Credentials,
                                          simulator: RunningSimulator) -> None:
    assert credentials.token.startswith("ya29.") and credentials.valid
    grant = simulator.last_request("/token")["body"]
    assert grant["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = orjson.loads(base64.urlsafe_b64decode(grant["assertion"].split(".")[1] + "=="))
    assert claims["iss"] == "gateway@sim-proj.iam.gserviceaccount.com" and claims["scope"] == SCOPE


def test_generate_with_issued_token(credentials: service_account.Credentials,
                                    simulator: RunningSimulator) -> None:
    session = AuthorizedSession(credentials)
    url = simulator.base_url + PATH.format(model="gemini-1.5-pro", action="generateContent")
    body = {"contents": [{"role": "user", "parts": [{"text": "hello vertex"}]}]}
    resp = session.post(url, json=body).json()
    assert "hello vertex" in resp["candidates"][0]["content"]["parts"][0]["text"]
    assert resp["usageMetadata"]["trafficType"] == "ON_DEMAND"
    stream = session.post(url.replace(":generateContent", ":streamGenerateContent") + "?alt=sse",
                          json=body)
    assert stream.text.startswith("data: {")


def test_genai_sdk_in_vertex_mode(credentials: service_account.Credentials,
                                  simulator: RunningSimulator) -> None:
    client = genai.Client(vertexai=True, project="sim-proj", location="us-central1",
                          credentials=credentials,
                          http_options=types.HttpOptions(base_url=simulator.base_url))
    resp = client.models.generate_content(model="gemini-2.0-flash-001", contents="hi from genai")
    assert "hi from genai" in resp.text
    assert "/publishers/google/models/gemini-2.0-flash-001" in simulator.last_request(
        "publishers")["path"]


def test_predict_embeddings(credentials: service_account.Credentials,
                            simulator: RunningSimulator) -> None:
    session = AuthorizedSession(credentials)
    url = simulator.base_url + PATH.format(model="text-embedding-005", action="predict")
    resp = session.post(url, json={"instances": [{"content": "hello", "task_type": "RETRIEVAL_QUERY"}],
                                   "parameters": {"outputDimensionality": 32}}).json()
    emb = resp["predictions"][0]["embeddings"]
    assert len(emb["values"]) == 32 and emb["statistics"]["token_count"] == 2


def test_foreign_or_missing_tokens_are_refused(simulator: RunningSimulator) -> None:
    url = simulator.base_url + PATH.format(model="gemini-1.5-pro", action="generateContent")
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    for headers in ({}, {"Authorization": "Bearer ya29.not-issued-here"}):
        resp = requests.post(url, json=body, headers=headers)
        assert resp.status_code == 401 and resp.json()["error"]["status"] == "UNAUTHENTICATED"


def test_token_endpoint_checks_the_grant(simulator: RunningSimulator,
                                         private_key: rsa.RSAPrivateKey) -> None:
    url = simulator.base_url + "/token"
    wrong_grant = requests.post(url, data={"grant_type": "password", "assertion": "x"})
    assert wrong_grant.status_code == 400 and wrong_grant.json()["error"] == "unsupported_grant_type"
    garbage = requests.post(url, data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                       "assertion": "a.b.c"})
    assert garbage.json()["error"] == "invalid_grant"
    no_scope = service_account.Credentials.from_service_account_info(_info(simulator, private_key))
    with pytest.raises(auth_exceptions.RefreshError):
        no_scope.refresh(Request())


def test_expired_assertion_is_refused(simulator: RunningSimulator) -> None:
    def seg(obj: dict) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": "a@b.iam.gserviceaccount.com", "aud": "https://oauth2.googleapis.com/token",
              "scope": SCOPE, "iat": now - 7200, "exp": now - 3600}
    assertion = ".".join([seg({"alg": "RS256", "typ": "JWT"}), seg(claims),
                          base64.urlsafe_b64encode(b"s" * 256).rstrip(b"=").decode()])
    resp = requests.post(simulator.base_url + "/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
    assert resp.status_code == 400 and "short-lived" in resp.json()["error_description"]


def test_genai_vertex_count_tokens_and_embed(credentials: service_account.Credentials,
                                             simulator: RunningSimulator) -> None:
    client = genai.Client(vertexai=True, project="sim-proj", location="us-central1",
                          credentials=credentials,
                          http_options=types.HttpOptions(base_url=simulator.base_url))
    assert client.models.count_tokens(model="gemini-2.0-flash-001",
                                      contents="x" * 40).total_tokens == 10
    out = client.models.embed_content(model="text-embedding-005", contents=["a", "b"],
                                      config=types.EmbedContentConfig(output_dimensionality=8))
    assert [len(e.values) for e in out.embeddings] == [8, 8]
