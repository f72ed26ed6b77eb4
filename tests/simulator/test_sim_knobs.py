"""Knobs: directive and prefix parsing, faults on the wire, fail_first state, the request log."""

from __future__ import annotations

import anthropic
import boto3
import openai
import pytest
import requests
from botocore.exceptions import EventStreamError

from lmgate.simulator.knobs import Knobs, find_directives, parse_prefix
from lmgate.simulator.testing import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, RunningSimulator

CHAT = [{"role": "user", "content": "hi"}]


def test_directive_parsing() -> None:
    knobs, source, clean = find_directives(
        'Weather? [[sim: status=429 retry_after=2.5 tool=get_weather args={"city": "Paris FR"}]] ok')
    assert knobs == Knobs(status=429, retry_after=2.5, tool="get_weather",
                          args={"city": "Paris FR"})
    assert clean == "Weather?  ok" and source.startswith("status=429")
    knobs, _, _ = find_directives("[[sim: reply=Two words tokens=5]] [[sim: finish=length]]")
    assert knobs.reply == "Two words" and knobs.tokens == 5 and knobs.finish == "length"
    assert find_directives("no knobs")[0] is None
    prefix = parse_prefix("status=500,fail_first=2,delay_ms=10")
    assert (prefix.status, prefix.fail_first, prefix.delay_ms) == (500, 2, 10)
    assert prefix.merged(Knobs(status=503)).status == 503


def test_fail_first_prefix_then_reset(simulator: RunningSimulator, nonce: str) -> None:
    client = openai.OpenAI(base_url=simulator.url(f"status=503,fail_first=2,id={nonce}") + "/v1",
                           api_key="k", max_retries=0)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=CHAT)
    assert client.chat.completions.create(model="m", messages=CHAT).choices[0].message.content
    assert requests.post(simulator.base_url + "/_sim/reset").json() == {"reset": True}
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=CHAT)


def test_fail_first_in_prompt_lets_a_retry_succeed(simulator: RunningSimulator, nonce: str) -> None:
    client = openai.OpenAI(base_url=simulator.base_url + "/v1", api_key="k", max_retries=2)
    resp = client.chat.completions.create(model="m", messages=[
        {"role": "user", "content": f"x [[sim: status=500 fail_first=1 id={nonce}]]"}])
    assert resp.choices[0].finish_reason == "stop"
    assert len(simulator.requests(f"/v1/chat/completions")) >= 2


def test_delay(simulator: RunningSimulator) -> None:
    client = openai.OpenAI(base_url=simulator.base_url + "/v1", api_key="k", max_retries=0,
                           timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "x [[sim: delay_ms=3000]]"}])


def test_cut_stream_drops_the_connection(simulator: RunningSimulator) -> None:
    client = openai.OpenAI(base_url=simulator.base_url + "/v1", api_key="k", max_retries=0)
    received = []
    with pytest.raises(Exception) as info:
        for chunk in client.chat.completions.create(model="m", stream=True, messages=[
                {"role": "user", "content": "tell me more [[sim: cut_after=5]]"}]):
            received.append(chunk)
    cause = info.value.__cause__ or info.value
    assert "incomplete" in str(cause) or "peer closed" in str(cause) or isinstance(
        info.value, openai.APIConnectionError)
    assert len(received) == 5


def test_cut_anthropic_stream_has_no_message_stop(simulator: RunningSimulator) -> None:
    with requests.post(simulator.base_url + "/v1/messages", stream=True,
                       headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                       json={"model": "c", "max_tokens": 50, "stream": True, "messages": [
                           {"role": "user", "content": "x [[sim: cut_after=4]]"}]}) as resp:
        data = b""
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for piece in resp.iter_content(None):
                data += piece
    assert data.count(b"event: ") == 4 and b"message_stop" not in data


def test_stall_goes_silent(simulator: RunningSimulator) -> None:
    client = anthropic.Anthropic(base_url=simulator.base_url, api_key="k", max_retries=0,
                                 timeout=anthropic.Timeout(5.0, read=0.5))
    events = []
    with pytest.raises(Exception) as info:  # the SDK lets its HTTP library's ReadTimeout through
        with client.messages.stream(model="c", max_tokens=50, messages=[
                {"role": "user", "content": "x [[sim: stall_after=3]]"}]) as stream:
            for event in stream:
                events.append(event.type)
    assert "Timeout" in type(info.value).__name__
    assert events[:2] == ["message_start", "content_block_start"]


def test_request_log_endpoints(simulator: RunningSimulator, nonce: str) -> None:
    requests.post(simulator.url("delay_ms=1") + "/v1/chat/completions",
                  headers={"Authorization": "Bearer k"},
                  json={"model": nonce, "messages": CHAT})
    log = requests.get(simulator.base_url + "/_sim/requests").json()
    entry = log[-1]
    assert entry["body"]["model"] == nonce and entry["path"].startswith("/_sim/delay_ms=1/v1/")
    assert entry["headers"]["authorization"] == "Bearer k" and entry["method"] == "POST"
    assert simulator.last_request("/chat/completions")["body"]["model"] == nonce
    assert requests.delete(simulator.base_url + "/_sim/requests").status_code == 200
    assert simulator.requests() == []


def test_error_knob_picks_the_provider_error_type(simulator: RunningSimulator) -> None:
    client = openai.OpenAI(base_url=simulator.base_url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "x [[sim: status=429 error=insufficient_quota]]"}])
    assert info.value.body["code"] == "insufficient_quota"
    anth = anthropic.Anthropic(base_url=simulator.base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as err:
        anth.messages.create(model="c", max_tokens=5, messages=[
            {"role": "user", "content": "x [[sim: status=500 error=api_error]]"}])
    assert err.value.body["error"]["type"] == "api_error"


def test_vllm_flavor(simulator: RunningSimulator) -> None:
    client = openai.OpenAI(base_url=simulator.url("flavor=vllm") + "/v1", api_key="k",
                           max_retries=0)
    resp = client.chat.completions.create(model="google/gemma-3-12b-it", messages=CHAT,
                                          extra_body={"top_k": 5, "repetition_penalty": 1.1,
                                                      "something_else": 1})
    assert resp.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="google/gemma-3-12b-it", messages=[
            {"role": "system", "content": "s"}, {"role": "user", "content": "a"},
            {"role": "user", "content": "b"}])
    assert info.value.body == {
        "object": "error", "message": "Conversation roles must alternate "
        "user/assistant/user/assistant/...", "type": "BadRequestError", "param": None, "code": 400}


def test_error_after_sends_each_providers_in_stream_error(simulator: RunningSimulator) -> None:
    oa = requests.post(simulator.base_url + "/v1/chat/completions",
                       headers={"Authorization": "Bearer k"},
                       json={"model": "m", "stream": True, "messages": [
                           {"role": "user", "content": "x [[sim: error_after=2]]"}]})
    events = [e for e in oa.text.split("\n\n") if e]
    assert len(events) == 3 and '"error"' in events[-1] and "[DONE]" not in oa.text
    an = requests.post(simulator.base_url + "/v1/messages",
                       headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                       json={"model": "c", "max_tokens": 50, "stream": True, "messages": [
                           {"role": "user", "content": "x [[sim: error_after=3]]"}]})
    assert an.text.count("event: ") == 4 and "event: error\ndata: " in an.text
    assert "overloaded_error" in an.text and "message_stop" not in an.text
    gm = requests.post(simulator.base_url + "/v1beta/models/g:streamGenerateContent?alt=sse&key=k",
                       json={"contents": [{"parts": [{"text": "x [[sim: error_after=1]]"}]}]})
    assert gm.text.split("\r\n\r\n")[1].startswith('data: {"error"')
    bedrock = boto3.client("bedrock-runtime", endpoint_url=simulator.base_url,
                           region_name="us-east-1", aws_access_key_id=AWS_ACCESS_KEY_ID,
                           aws_secret_access_key=AWS_SECRET_ACCESS_KEY)
    stream = bedrock.converse_stream(modelId="m", messages=[{"role": "user", "content": [
        {"text": "x [[sim: error_after=2 error=throttlingException]]"}]}])
    with pytest.raises(EventStreamError) as info:
        list(stream["stream"])
    assert "throttlingException" in str(info.value)


def test_context_too_long_in_each_providers_words(simulator: RunningSimulator) -> None:
    ask = "x [[sim: status=400 error=context_length_exceeded]]"
    client = openai.OpenAI(base_url=simulator.base_url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": ask}])
    assert info.value.body["code"] == "context_length_exceeded"
    anth = anthropic.Anthropic(base_url=simulator.base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as err:
        anth.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": ask}])
    assert err.value.body["error"]["message"].startswith("prompt is too long")
    gem = requests.post(simulator.base_url + "/v1beta/models/g:generateContent?key=k",
                        json={"contents": [{"parts": [{"text": ask}]}]}).json()["error"]
    assert gem["status"] == "INVALID_ARGUMENT" and "input token count" in gem["message"]


def test_azure_prompt_content_filter_error(simulator: RunningSimulator) -> None:
    azure = openai.AzureOpenAI(azure_endpoint=simulator.base_url, api_key="k",
                               api_version="2024-10-21", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        azure.chat.completions.create(model="d", messages=[
            {"role": "user", "content": "x [[sim: status=400 error=content_filter]]"}])
    assert info.value.body["code"] == "content_filter"
    assert info.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
