"""The bedrock provider through the gateway: the openai (and anthropic) SDK in front, the simulator's
bedrock-runtime behind, which verifies every SigV4 signature with botocore."""

from __future__ import annotations

import base64
from typing import Iterator

import anthropic
import openai
import pytest

from lmgate.errors import ContextLengthExceeded, UpstreamAuthError, UpstreamOverloaded, UpstreamRateLimited, UpstreamTimeout
from lmgate.providers.bedrock import parse_error
from lmgate.providers.http import map_failure
from lmgate.simulator.answer import png_bytes
from lmgate.simulator.testing import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, RunningSimulator, start_simulator
from lmgate.testing import RunningGateway, start_gateway

KEY = "sk-gw-bedrock-provider"
PNG = png_bytes("bedrock")
PDF = b"%PDF-1.4\n1 0 obj <</Type/Page>> endobj\n%%EOF"

CONFIG = """
providers:
  aws: {{type: bedrock, base_url: "{sim}", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
  aws-session: {{type: bedrock, base_url: "{sim}", region: eu-west-1, access_key_id: {ak}, secret_access_key: {sk}, session_token: "FQoGZXIvYXdzEXAMPLE//token=="}}
  aws-wrong: {{type: bedrock, base_url: "{sim}", region: us-east-1, access_key_id: {ak}, secret_access_key: not-the-secret}}
  aws-429: {{type: bedrock, base_url: "{sim}/_sim/status=429", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
  aws-503: {{type: bedrock, base_url: "{sim}/_sim/status=503", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
  aws-408: {{type: bedrock, base_url: "{sim}/_sim/status=408", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
models:
  - name: nova
    deployments: [{{provider: aws, model: us.amazon.nova-lite-v1:0}}]
  - name: nova-session
    deployments: [{{provider: aws-session, model: us.amazon.nova-pro-v1:0}}]
  - name: llama
    deployments: [{{provider: aws, model: meta.llama3-1-8b-instruct-v1:0}}]
  - name: claude
    deployments: [{{provider: aws, model: anthropic.claude-3-haiku-20240307-v1:0}}]
    modalities: [text, image, document]
  - name: nova-wrong
    deployments: [{{provider: aws-wrong, model: us.amazon.nova-lite-v1:0}}]
  - name: nova-429
    deployments: [{{provider: aws-429, model: us.amazon.nova-lite-v1:0}}]
  - name: nova-503
    deployments: [{{provider: aws-503, model: us.amazon.nova-lite-v1:0}}]
  - name: nova-408
    deployments: [{{provider: aws-408, model: us.amazon.nova-lite-v1:0}}]
keys:
  - {{key: {key}, name: main}}
router: {{retries: 0, backoff_s: 0}}
media: {{allow_hosts: ["127.0.0.1"]}}
"""

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    s = start_simulator()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(sim: RunningSimulator) -> Iterator[RunningGateway]:
    g = start_gateway(CONFIG.format(sim=sim.base_url, ak=AWS_ACCESS_KEY_ID, sk=AWS_SECRET_ACCESS_KEY, key=KEY), steps=[])  # no cache: every call reaches the simulator
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)


def test_converse_text_system_and_signature(client: openai.OpenAI, sim: RunningSimulator) -> None:
    r = client.chat.completions.create(model="nova", messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hello World"}], max_tokens=200, temperature=0.5, top_p=0.9)
    assert 'Simulated reply from us.amazon.nova-lite-v1:0' in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0 and r.usage.estimated_cost > 0
    sent = sim.last_request("/converse")
    assert sent["raw_path"] == "/model/us.amazon.nova-lite-v1%3A0/converse"  # the id encoded as AWS SDKs do
    assert sent["headers"]["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY_ID}/")
    assert "/us-east-1/bedrock/aws4_request" in sent["headers"]["authorization"]
    assert sent["body"]["system"] == [{"text": "Answer briefly."}]
    assert sent["body"]["inferenceConfig"] == {"maxTokens": 200, "temperature": 0.5, "topP": 0.9}
    assert sent["body"]["messages"] == [{"role": "user", "content": [{"text": "Hello World"}]}]


def test_session_token_and_region(client: openai.OpenAI, sim: RunningSimulator) -> None:
    client.chat.completions.create(model="nova-session", messages=[{"role": "user", "content": "hi"}])
    sent = sim.last_request("/converse")
    assert sent["headers"]["x-amz-security-token"] == "FQoGZXIvYXdzEXAMPLE//token=="
    assert "/eu-west-1/bedrock/aws4_request" in sent["headers"]["authorization"]


def test_llama_multi_turn_merges_roles(client: openai.OpenAI, sim: RunningSimulator) -> None:
    r = client.chat.completions.create(model="llama", messages=[
        {"role": "user", "content": "first"}, {"role": "user", "content": "second"},
        {"role": "assistant", "content": "ok"}, {"role": "user", "content": "third"},
    ])
    assert 'you said "third"' in r.choices[0].message.content
    body = sim.last_request("/converse")["body"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [{"text": "first"}, {"text": "second"}]


def test_image_document_and_fetched_url(client: openai.OpenAI, sim: RunningSimulator) -> None:
    r = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
        {"type": "image_url", "image_url": {"url": sim.base_url + "/_sim/images/cat.png"}},
        {"type": "file", "file": {"filename": "annual report.2024.pdf", "file_data": "data:application/pdf;base64," + base64.b64encode(PDF).decode()}},
    ]}])
    assert "1 document and 2 images" in r.choices[0].message.content
    blocks = sim.last_request("/converse")["body"]["messages"][0]["content"]
    assert blocks[1] == {"image": {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}}
    assert blocks[2]["image"]["format"] == "png" and base64.b64decode(blocks[2]["image"]["source"]["bytes"]) == png_bytes("cat")
    assert blocks[3] == {"document": {"format": "pdf", "name": "annual report-2024", "source": {"bytes": base64.b64encode(PDF).decode()}}}


@pytest.mark.parametrize("model", ["nova", "claude"])
def test_tools_round_trip(client: openai.OpenAI, sim: RunningSimulator, model: str) -> None:
    first = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Weather in Paris? [[sim: tool=get_weather]]"}], tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"Paris"}'
    sent = sim.last_request("/converse")["body"]
    assert sent["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"] == ["city"]
    history = [
        {"role": "user", "content": "Weather in Paris? [[sim: tool=get_weather]]"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = client.chat.completions.create(model=model, messages=history)  # no tools offered, as in 003
    assert "the tool get_weather returned: sunny, 21 C" in second.choices[0].message.content
    sent = sim.last_request("/converse")["body"]
    assert sent["messages"][1]["content"] == [{"toolUse": {"toolUseId": call.id, "name": "get_weather", "input": {"city": "Paris"}}}]
    assert sent["messages"][2]["content"] == [{"toolResult": {"toolUseId": call.id, "content": [{"text": "sunny, 21 C"}]}}]
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


@pytest.mark.parametrize("model", ["nova", "llama", "claude"])
def test_converse_stream(client: openai.OpenAI, sim: RunningSimulator, model: str) -> None:
    whole = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "stream me"}])
    chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "stream me"}], stream=True, stream_options={"include_usage": True}))
    assert sim.last_request("/model/")["path"].endswith("/converse-stream")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens > 0
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens > 0


def test_stream_tool_call(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "weather [[sim: tool=get_weather]]"}], tools=TOOLS, stream=True, stream_options={"include_usage": True}))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id.startswith("tooluse_") and calls[0].function.name == "get_weather"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"city":"Paris"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


@pytest.mark.parametrize("knob, finish", [("finish=length", "length"), ("finish=content_filter", "content_filter")])
def test_finish_reasons(client: openai.OpenAI, knob: str, finish: str) -> None:
    r = client.chat.completions.create(model="nova", messages=[{"role": "user", "content": f"[[sim: {knob}]] go on"}])
    assert r.choices[0].finish_reason == finish


def test_cache_tokens(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "word " * 200 + "[[sim: cached=100 cache_write=20]]"}])
    assert r.usage.prompt_tokens_details.cached_tokens == 100
    assert r.usage.prompt_tokens > 120


def test_anthropic_shaped_requests_use_invoke_model(gw: RunningGateway, sim: RunningSimulator) -> None:
    """The same-format fast path: an Anthropic Messages body goes to InvokeModel for a Claude model."""
    c = anthropic.Anthropic(base_url=gw.base_url, api_key=KEY, max_retries=0)
    msg = c.messages.create(model="claude", max_tokens=64, system="brief", messages=[{"role": "user", "content": "hello"}])
    sent = sim.last_request("/model/")
    assert sent["raw_path"] == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"
    assert sent["body"] == {"max_tokens": 64, "system": "brief", "messages": [{"role": "user", "content": "hello"}], "anthropic_version": "bedrock-2023-05-31"}
    assert msg.content[0].text.startswith("Simulated reply from anthropic.claude-3-haiku")
    with c.messages.stream(model="claude", max_tokens=64, messages=[{"role": "user", "content": "hello"}]) as s:
        final = s.get_final_message()
    assert sim.last_request("/model/")["path"].endswith("/invoke-with-response-stream")
    assert final.content[0].text == msg.content[0].text and final.usage.output_tokens > 0
    # a non-Claude Bedrock model gets the same body through Converse
    c.messages.create(model="nova", max_tokens=64, messages=[{"role": "user", "content": "hello"}])
    assert sim.last_request("/model/")["path"].endswith("/converse")


@pytest.mark.parametrize(
    "model, status, code",
    [
        ("nova-wrong", 502, "upstream_auth_error"),
        ("nova-429", 429, "upstream_rate_limited"),
        ("nova-503", 503, "upstream_overloaded"),
        ("nova-408", 504, "upstream_timeout"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors(client: openai.OpenAI, model: str, status: int, code: str, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        out = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=stream)
        list(out) if stream else None
    assert info.value.status_code == status
    assert info.value.body["code"] == code
    assert AWS_SECRET_ACCESS_KEY not in str(info.value.body)


def test_validation_error_is_the_clients(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "[[sim: status=400]] hi"}])


@pytest.mark.parametrize(
    "name, message, error",
    [
        ("ValidationException", "Input is too long for requested model.", ContextLengthExceeded),
        ("ThrottlingException", "Too many requests, please wait before trying again.", UpstreamRateLimited),
        ("AccessDeniedException", "You don't have access to the model with the specified model ID.", UpstreamAuthError),
        ("UnrecognizedClientException", "The security token included in the request is invalid.", UpstreamAuthError),
        ("ModelNotReadyException", "Model is not ready.", UpstreamOverloaded),
        ("ServiceUnavailableException", "Bedrock is unable to process your request.", UpstreamOverloaded),
        ("ModelTimeoutException", "Model has timed out.", UpstreamTimeout),
    ],
)
def test_exceptions_are_mapped(name: str, message: str, error: type) -> None:
    status = {"ValidationException": 400, "ThrottlingException": 429, "ModelNotReadyException": 429, "ServiceUnavailableException": 503, "ModelTimeoutException": 408}.get(name, 403)
    body = ('{"message": "%s"}' % message).encode()
    by_header = map_failure(parse_error(status, body, {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}), "aws", str)
    by_type = map_failure(parse_error(status, ('{"__type": "com.amazon.bedrock#%s", "message": "%s"}' % (name, message)).encode(), {}), "aws", str)
    assert type(by_header) is error and type(by_type) is error


def test_bedrock_api_key_is_sent_as_a_bearer_token(gw: RunningGateway, sim: RunningSimulator) -> None:
    """With `api_key` (a Bedrock API key) the provider sends `Authorization: Bearer` instead of SigV4;
    checked against another lmgate's Bedrock surface, which takes exactly that."""
    front = start_gateway(
        f"""
providers:
  aws-key: {{type: bedrock, base_url: "{gw.base_url}", api_key: "{KEY}"}}
models:
  - name: via-key
    deployments: [{{provider: aws-key, model: "nova"}}]
keys:
  - {{key: sk-front-key-0123, name: front}}
router: {{retries: 0}}
""",
        steps=[],
    )
    try:
        c = openai.OpenAI(base_url=front.base_url + "/v1", api_key="sk-front-key-0123", max_retries=0)
        r = c.chat.completions.create(model="via-key", messages=[{"role": "user", "content": "through two gateways"}])
        assert 'Simulated reply from us.amazon.nova-lite-v1:0' in r.choices[0].message.content
        chunks = list(c.chat.completions.create(model="via-key", messages=[{"role": "user", "content": "streamed"}], stream=True, stream_options={"include_usage": True}))
        assert chunks[-1].usage.completion_tokens > 0
    finally:
        front.stop()
