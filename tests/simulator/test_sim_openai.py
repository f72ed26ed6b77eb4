"""The OpenAI protocol of the simulator, exercised with the real `openai` SDK."""

from __future__ import annotations

import base64
import io
import struct
import wave

import openai
import pytest
import requests

from lmgate.simulator.testing import RunningSimulator

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"enum": ["c", "f"]}},
                   "required": ["city"]}}}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


@pytest.fixture(scope="module")
def client(simulator: RunningSimulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=simulator.base_url + "/v1", api_key="sk-test", max_retries=0)


def _stream_text(client: openai.OpenAI, **kwargs):  # type: ignore[no-untyped-def]
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_whole_and_streamed_answers_match(client: openai.OpenAI) -> None:
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Tell me about the moon and the tides please"}]
    whole = client.chat.completions.create(model="gpt-4o", messages=msgs)
    again = client.chat.completions.create(model="gpt-4o", messages=msgs)
    text, chunks = _stream_text(client, model="gpt-4o", messages=msgs,
                                stream_options={"include_usage": True})
    answer = whole.choices[0].message.content
    assert answer == again.choices[0].message.content == text
    assert "gpt-4o" in answer and "Tell me about the moon" in answer
    assert whole.id.startswith("chatcmpl-") and whole.choices[0].finish_reason == "stop"
    assert whole.usage.prompt_tokens >= 10 and whole.usage.completion_tokens > 5
    final = chunks[-1]
    assert final.choices == [] and final.usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_stream_ends_with_done(simulator: RunningSimulator) -> None:
    resp = requests.post(simulator.base_url + "/v1/chat/completions",
                         headers={"Authorization": "Bearer sk-x"},
                         json={"model": "m", "stream": True,
                               "messages": [{"role": "user", "content": "hi"}]})
    events = [e for e in resp.text.split("\n\n") if e]
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


def test_tool_call_from_knob_and_round_trip(client: openai.OpenAI) -> None:
    ask = {"role": "user", "content": 'Weather? [[sim: tool=get_weather args={"city":"Paris"}]]'}
    first = client.chat.completions.create(model="gpt-4o", messages=[ask], tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris"}'
    reply = client.chat.completions.create(model="gpt-4o", tools=TOOLS, messages=[
        ask, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees"}])
    assert "Sunny, 24 degrees" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"


def test_tool_auto_builds_arguments_and_streams(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="gpt-4o", tools=TOOLS, stream=True,
        messages=[{"role": "user", "content": "weather [[sim: tool=auto]]"}]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id.startswith("call_") and calls[0].function.name == "get_weather"
    args = "".join(tc.function.arguments or "" for tc in calls)
    assert args == '{"city":"Paris"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_finish_reasons_and_lengths(client: openai.OpenAI) -> None:
    capped = client.chat.completions.create(
        model="m", max_tokens=3, messages=[{"role": "user", "content": "a long question here"}])
    assert capped.choices[0].finish_reason == "length" and capped.usage.completion_tokens == 3
    sized = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x [[sim: tokens=120]]"}])
    assert sized.usage.completion_tokens == 120
    exact = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[[sim: reply=Exactly this.]] hi"}])
    assert exact.choices[0].message.content == "Exactly this."
    filtered = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x [[sim: finish=content_filter]]"}])
    assert filtered.choices[0].finish_reason == "content_filter"
    cached = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "y " * 200 + "[[sim: cached=64]]"}])
    assert cached.usage.prompt_tokens_details.cached_tokens == 64


def test_multimodal_parts_are_accepted_and_counted(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
        {"type": "file", "file": {"filename": "a.pdf",
                                  "file_data": "data:application/pdf;base64,JVBERi0x"}}]}])
    assert "1 document and 1 image" in resp.choices[0].message.content
    assert resp.usage.prompt_tokens > 500


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                          response_format={"type": "json_schema", "json_schema": {
                                              "name": "p", "schema": {
                                                  "type": "object", "required": ["n", "ok"],
                                                  "properties": {"n": {"type": "integer"},
                                                                 "ok": {"type": "boolean"}}}}})
    assert resp.choices[0].message.content == '{"n":1,"ok":true}'


@pytest.mark.parametrize("content, param", [
    ([{"type": "file", "file": {"file_name": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}}],
     "messages[0].content[0].file.file_name"),
    ([{"type": "image_url", "image_url": {"url": "https://x/y.png"}, "detail": "high"}],
     "messages[0].content[0].detail"),
    ([{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!notbase64"}}],
     "messages[0].content[0].image_url.url"),
    ([{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAAA"}}],
     "messages[0].content[0].image_url.url"),
])
def test_malformed_parts_get_openai_400(client: openai.OpenAI, content, param) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": content}])
    assert info.value.body["param"] == param and info.value.body["type"] == "invalid_request_error"


def test_malformed_requests_get_openai_400(client: openai.OpenAI, simulator: RunningSimulator) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[])
    assert info.value.body["code"] == "empty_array"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[
            {"role": "tool", "tool_call_id": "call_1", "content": "x"}])
    assert "preceeding message with 'tool_calls'" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                       extra_body={"is_cache": 1})
    assert "is_cache" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", temperature=3,
                                       messages=[{"role": "user", "content": "x"}])
    raw = requests.post(simulator.base_url + "/v1/chat/completions", data=b"{not json",
                        headers={"Authorization": "Bearer k", "Content-Type": "application/json"})
    assert raw.status_code == 400 and "error" in raw.json()


def test_auth_errors(simulator: RunningSimulator) -> None:
    bad = openai.OpenAI(base_url=simulator.base_url + "/v1", api_key="sk-invalid-key",
                        max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "invalid_api_key"
    missing = requests.post(simulator.base_url + "/v1/chat/completions", json={})
    assert missing.status_code == 401 and "didn't provide an API key" in missing.json()["error"]["message"]


def test_status_knobs_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "x [[sim: status=429 retry_after=2]]"}])
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "x [[sim: status=503]]"}])
    assert info.value.status_code == 503 and info.value.body["type"] == "server_error"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "x [[sim: status=404]]"}])


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o" in ids and "text-embedding-3-small" in ids


def test_embeddings(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model="text-embedding-3-small", input="hello",
                                   encoding_format="float")
    assert len(one.data[0].embedding) == 1536 and one.usage.prompt_tokens == 2
    short = client.embeddings.create(model="text-embedding-3-small", input=["hello", "bye"],
                                     dimensions=8, encoding_format="float")
    assert [d.index for d in short.data] == [0, 1] and len(short.data[0].embedding) == 8
    assert short.data[0].embedding != short.data[1].embedding
    norm = sum(v * v for v in short.data[0].embedding)
    assert abs(norm - 1) < 1e-3
    b64 = client.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=8,
                                   encoding_format="base64")
    raw = base64.b64decode(b64.data[0].embedding)
    assert list(struct.unpack("<8f", raw)) == pytest.approx(short.data[0].embedding, abs=1e-6)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)


def test_images(client: openai.OpenAI, simulator: RunningSimulator) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="dall-e-3", prompt="a cat", n=2)
    assert info.value.body["message"] == "You must provide n=1 for this model."
    url = client.images.generate(model="dall-e-3", prompt="a cat").data[0]
    assert url.revised_prompt and requests.get(url.url).content.startswith(b"\x89PNG")
    b64 = client.images.generate(model="dall-e-2", prompt="a cat", n=2, size="256x256",
                                 response_format="b64_json")
    assert len(b64.data) == 2 and base64.b64decode(b64.data[0].b64_json)[:4] == b"\x89PNG"


def _wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))
    return buf.getvalue()


def test_transcriptions_in_every_format(client: openai.OpenAI) -> None:
    audio = ("talk.wav", _wav(2.5))
    text = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert text.text.startswith("Simulated transcription of talk.wav")
    plain = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="text")
    assert plain.strip() == text.text
    srt = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\n")
    vtt = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500")
    verbose = client.audio.transcriptions.create(model="whisper-1", file=audio,
                                                 response_format="verbose_json",
                                                 timestamp_granularities=["word"])
    assert verbose.duration == 2.5 and verbose.segments[0].end == 2.5 and verbose.words
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model="whisper-1", file=("x.txt", b"abc"))
