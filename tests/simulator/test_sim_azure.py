"""Azure OpenAI paths, headers and quirks, exercised with the real `AzureOpenAI` client."""

from __future__ import annotations

import openai
import pytest
import requests

from lmgate.simulator.testing import RunningSimulator

VERSION = "2024-10-21"


@pytest.fixture(scope="module")
def azure(simulator: RunningSimulator) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=simulator.base_url, api_key="0123456789abcdef",
                              api_version=VERSION, max_retries=0)


def test_chat_whole_carries_filter_results(azure: openai.AzureOpenAI, simulator: RunningSimulator) -> None:
    resp = azure.chat.completions.create(model="prod-gpt4o",
                                         messages=[{"role": "user", "content": "hello azure"}])
    assert resp.model == "prod-gpt4o" and "hello azure" in resp.choices[0].message.content
    assert resp.model_extra["prompt_filter_results"][0]["content_filter_results"]["hate"] == {
        "filtered": False, "severity": "safe"}
    assert resp.choices[0].model_extra["content_filter_results"]["violence"]["filtered"] is False
    sent = simulator.last_request("/openai/deployments/prod-gpt4o/chat/completions")
    assert sent["query"]["api-version"] == VERSION and sent["headers"]["api-key"]


def test_stream_starts_with_choiceless_filter_chunk(azure: openai.AzureOpenAI) -> None:
    chunks = list(azure.chat.completions.create(
        model="prod-gpt4o", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hello azure"}]))
    first = chunks[0]
    assert first.choices == [] and first.model_extra["prompt_filter_results"]
    assert first.id == "" and first.model == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = azure.chat.completions.create(model="prod-gpt4o",
                                          messages=[{"role": "user", "content": "hello azure"}])
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_content_filter_finish(azure: openai.AzureOpenAI) -> None:
    resp = azure.chat.completions.create(model="d", messages=[
        {"role": "user", "content": "x [[sim: finish=content_filter]]"}])
    choice = resp.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.model_extra["content_filter_results"]["violence"] == {
        "filtered": True, "severity": "high"}


def test_api_version_is_required(simulator: RunningSimulator) -> None:
    url = simulator.base_url + "/openai/deployments/d/chat/completions"
    body = {"messages": [{"role": "user", "content": "x"}]}
    missing = requests.post(url, headers={"api-key": "k"}, json=body)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "404", "message": "Resource not found"}}
    wrong = requests.post(url + "?api-version=latest", headers={"api-key": "k"}, json=body)
    assert wrong.status_code == 400


def test_auth_error_in_azure_shape(simulator: RunningSimulator) -> None:
    client = openai.AzureOpenAI(azure_endpoint=simulator.base_url, api_key="invalid-key",
                                api_version=VERSION, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="d", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "401"
    no_key = requests.post(simulator.base_url + f"/openai/deployments/d/chat/completions"
                           f"?api-version={VERSION}", json={})
    assert no_key.status_code == 401 and "Access denied" in no_key.json()["error"]["message"]


def test_rate_limit_has_retry_headers(azure: openai.AzureOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        azure.chat.completions.create(model="d", messages=[
            {"role": "user", "content": "x [[sim: status=429 retry_after=3]]"}])
    headers = info.value.response.headers
    assert headers["retry-after"] == "3" and headers["retry-after-ms"] == "3000"
    assert info.value.body["code"] == "429" and "retry after 3 seconds" in info.value.body["message"]


def test_dalle3_refuses_n_above_one(azure: openai.AzureOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        azure.images.generate(model="dall-e-3", prompt="a lighthouse", n=2)
    image = azure.images.generate(model="dall-e-3", prompt="a lighthouse", quality="hd")
    assert image.data[0].url and image.data[0].model_extra["content_filter_results"]


def test_embeddings_and_transcription(azure: openai.AzureOpenAI) -> None:
    emb = azure.embeddings.create(model="emb-small", input=["one", "two"], dimensions=16)
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 16
    text = azure.audio.transcriptions.create(model="whisper", file=("a.mp3", b"ID3fakeaudio"),
                                             response_format="vtt")
    assert text.startswith("WEBVTT")
