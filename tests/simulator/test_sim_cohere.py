"""Cohere Embed v2 with plain requests, as 003's examples call it."""

from __future__ import annotations

import requests

from lmgate.simulator.testing import RunningSimulator

HEADERS = {"Authorization": "Bearer co-test", "Content-Type": "application/json"}


def _embed(simulator: RunningSimulator, body: dict, headers: dict | None = None) -> requests.Response:
    return requests.post(simulator.base_url + "/v2/embed", json=body,
                         headers=HEADERS if headers is None else headers)


def test_embed_by_type(simulator: RunningSimulator) -> None:
    resp = _embed(simulator, {"model": "embed-english-v3.0", "texts": ["hello", "world"],
                              "input_type": "search_document",
                              "embedding_types": ["float", "int8"]})
    body = resp.json()
    assert resp.status_code == 200 and body["response_type"] == "embeddings_by_type"
    assert [len(v) for v in body["embeddings"]["float"]] == [1024, 1024]
    assert len(body["embeddings"]["int8"]) == 2 and body["texts"] == ["hello", "world"]
    assert body["meta"]["billed_units"]["input_tokens"] == 4
    again = _embed(simulator, {"model": "embed-english-v3.0", "texts": ["hello"],
                               "input_type": "search_query"}).json()
    assert again["embeddings"]["float"][0] == body["embeddings"]["float"][0]


def test_at_most_96_texts(simulator: RunningSimulator) -> None:
    resp = _embed(simulator, {"model": "embed-english-v3.0", "texts": ["t"] * 97,
                              "input_type": "search_document"})
    assert resp.status_code == 400
    assert resp.json()["message"] == ("invalid request: total number of texts must be at most 96 "
                                      "- received 97")
    assert _embed(simulator, {"model": "embed-english-v3.0", "texts": ["t"] * 96,
                              "input_type": "search_document"}).status_code == 200


def test_input_type_required_for_v3(simulator: RunningSimulator) -> None:
    resp = _embed(simulator, {"model": "embed-multilingual-v3.0", "texts": ["x"]})
    assert resp.status_code == 400 and "input_type" in resp.json()["message"]
    bad_type = _embed(simulator, {"model": "embed-v4.0", "texts": ["x"], "input_type": "query"})
    assert bad_type.status_code == 400


def test_auth_and_knobs(simulator: RunningSimulator) -> None:
    body = {"model": "embed-english-v3.0", "texts": ["x"], "input_type": "search_query"}
    assert _embed(simulator, body, headers={}).status_code == 401
    wrong = _embed(simulator, body, headers={"Authorization": "Bearer invalid-key"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "invalid api token"
    limited = _embed(simulator, {**body, "texts": ["x [[sim: status=429 retry_after=1]]"]})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
