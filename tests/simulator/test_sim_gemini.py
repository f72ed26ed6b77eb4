"""Gemini on AI Studio, exercised with the real `google-genai` SDK and raw requests."""

from __future__ import annotations

import base64

import orjson
import pytest
import requests
from google import genai
from google.genai import errors, types

from lmgate.simulator.testing import RunningSimulator

MODEL = "gemini-2.0-flash"


@pytest.fixture(scope="module")
def client(simulator: RunningSimulator) -> genai.Client:
    return genai.Client(api_key="AIza-test", http_options=types.HttpOptions(base_url=simulator.base_url))


def _url(simulator: RunningSimulator, action: str, query: str = "") -> str:
    return f"{simulator.base_url}/v1beta/models/{MODEL}:{action}{query}"


def test_generate_whole_and_streamed(client: genai.Client, simulator: RunningSimulator) -> None:
    config = types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.3)
    whole = client.models.generate_content(model=MODEL, contents="Tell me about Saturn's rings",
                                           config=config)
    assert "Saturn's rings" in whole.text and MODEL in whole.text
    assert whole.candidates[0].finish_reason == types.FinishReason.STOP
    usage = whole.usage_metadata
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    sent = simulator.last_request(MODEL)
    assert sent["headers"]["x-goog-api-key"] == "AIza-test"
    assert sent["body"]["systemInstruction"]["parts"][0]["text"] == "Be brief."
    chunks = list(client.models.generate_content_stream(
        model=MODEL, contents="Tell me about Saturn's rings", config=config))
    assert "".join(c.text or "" for c in chunks) == whole.text
    assert chunks[-1].usage_metadata.candidates_token_count == usage.candidates_token_count
    assert simulator.last_request(MODEL)["query"]["alt"] == "sse"


def test_sse_framing_and_json_array_stream(simulator: RunningSimulator) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    sse = requests.post(_url(simulator, "streamGenerateContent", "?alt=sse&key=k"), json=body)
    events = [e for e in sse.text.split("\r\n\r\n") if e]
    assert all(e.startswith("data: {") for e in events)
    assert orjson.loads(events[-1][6:])["candidates"][0]["finishReason"] == "STOP"
    array = requests.post(_url(simulator, "streamGenerateContent", "?key=k"), json=body)
    items = orjson.loads(array.text)
    assert array.headers["content-type"].startswith("application/json")
    text = "".join(i["candidates"][0]["content"]["parts"][0]["text"] for i in items)
    assert text == "".join(orjson.loads(e[6:])["candidates"][0]["content"]["parts"][0]["text"]
                           for e in events)


def test_function_calling_round_trip(client: genai.Client, simulator: RunningSimulator) -> None:
    def get_weather(city: str) -> str:
        """Weather of a city."""
        return f"Sunny in {city}"

    resp = client.models.generate_content(
        model=MODEL, contents="Weather? [[sim: tool=auto]]",
        config=types.GenerateContentConfig(tools=[get_weather]))
    assert "Sunny in Paris" in resp.text  # the SDK ran the tool and sent functionResponse back
    sent = simulator.last_request(MODEL)["body"]["contents"]
    assert sent[1]["parts"][0]["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
    assert sent[2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_inline_data_and_finish_reasons(simulator: RunningSimulator) -> None:
    image = base64.b64encode(b"\x89PNG fake").decode()
    body = {"contents": [{"role": "user", "parts": [
        {"text": "what is it? [[sim: cached=5]]"},
        {"inlineData": {"mimeType": "image/png", "data": image}}]}],
        "generationConfig": {"maxOutputTokens": 3}}
    resp = requests.post(_url(simulator, "generateContent"), headers={"x-goog-api-key": "k"},
                         json=body).json()
    assert resp["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert resp["usageMetadata"]["candidatesTokenCount"] == 3
    assert resp["usageMetadata"]["cachedContentTokenCount"] == 5
    body["contents"][0]["parts"][0]["text"] = "x [[sim: finish=content_filter]]"
    del body["generationConfig"]
    blocked = requests.post(_url(simulator, "generateContent", "?key=k"), json=body).json()
    assert blocked["candidates"][0]["finishReason"] == "SAFETY"
    assert "content" not in blocked["candidates"][0]


def test_embeddings(client: genai.Client, simulator: RunningSimulator) -> None:
    out = client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"],
                                      config=types.EmbedContentConfig(output_dimensionality=16))
    assert [len(e.values) for e in out.embeddings] == [16, 16]
    single = requests.post(f"{simulator.base_url}/v1beta/models/text-embedding-004:embedContent",
                           headers={"x-goog-api-key": "k"},
                           json={"content": {"parts": [{"text": "a"}]}}).json()
    assert len(single["embedding"]["values"]) == 768


def test_errors_in_google_shape(simulator: RunningSimulator) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    no_key = requests.post(_url(simulator, "generateContent"), json=body)
    assert no_key.status_code == 403 and no_key.json()["error"]["status"] == "PERMISSION_DENIED"
    bad_key = requests.post(_url(simulator, "generateContent", "?key=invalid"), json=body)
    error = bad_key.json()["error"]
    assert bad_key.status_code == 400 and error["details"][0]["reason"] == "API_KEY_INVALID"
    unknown = requests.post(_url(simulator, "generateContent", "?key=k"),
                            json={**body, "generationConfig": {"max_tokens": 5}})
    assert unknown.status_code == 400
    assert 'Unknown name "max_tokens"' in unknown.json()["error"]["message"]
    role = requests.post(_url(simulator, "generateContent", "?key=k"),
                         json={"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})
    assert role.json()["error"]["message"] == "Please use a valid role: user, model."
    empty = requests.post(_url(simulator, "generateContent", "?key=k"), json={"contents": []})
    assert empty.json()["error"]["code"] == 400


def test_rate_limit_knob_reports_retry_info(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="x [[sim: status=429 retry_after=7]]")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    assert info.value.details["error"]["details"][0]["retryDelay"] == "7s"
    with pytest.raises(errors.ServerError) as info:
        client.models.generate_content(model=MODEL, contents="x [[sim: status=503]]")
    assert info.value.status == "UNAVAILABLE"
