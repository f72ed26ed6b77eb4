"""The Bedrock surface: 004's `requests` snippets for /bedrock/v1/messages/{anthropic,llama,nova},
and boto3's bedrock-runtime client with a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK), served by
Bedrock deployments and by OpenAI- and Anthropic-protocol ones (any surface to any provider).

botocore sends bearer tokens over HTTPS only, so boto3 talks to a TLS gateway with a throw-away
self-signed certificate."""

from __future__ import annotations

import base64
import json
import shutil
from typing import Any, Iterator

import boto3
import orjson
import pytest
import requests
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, EventStreamError
from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.parsers import RestJSONParser

from lmgate.app import Gateway
from lmgate.config import parse_config
from lmgate.simulator.answer import png_bytes
from lmgate.simulator.testing import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, RunningSimulator, start_simulator
from lmgate.testing import RunningGateway, self_signed_cert, serve_app, start_gateway

KEY = "sk-gw-bedrock-surface"
PNG = png_bytes("sample")
PDF = b"%PDF-1.4\n1 0 obj <</Type/Page>> endobj\n%%EOF"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 32

CONFIG = """
providers:
  oai: {{type: openai, base_url: "{sim}/v1", api_key: sk-oai-upstream-0123456789}}
  anth: {{type: anthropic, base_url: "{sim}", api_key: sk-ant-upstream-0123456789}}
  aws: {{type: bedrock, base_url: "{sim}", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
  aws-429: {{type: bedrock, base_url: "{sim}/_sim/status=429", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
models:
  - name: anthropic.claude-3-haiku-20240307-v1:0
    deployments: [{{provider: aws, model: anthropic.claude-3-haiku-20240307-v1:0}}]
  - name: meta.llama3-1-8b-instruct-v1:0
    deployments: [{{provider: aws, model: meta.llama3-1-8b-instruct-v1:0}}]
  - name: us.amazon.nova-lite-v1:0
    deployments: [{{provider: aws, model: us.amazon.nova-lite-v1:0}}]
  - name: us.amazon.nova-pro-v1:0
    deployments: [{{provider: aws, model: us.amazon.nova-pro-v1:0}}]
  - name: gpt-4o
    deployments: [{{provider: oai, model: gpt-4o}}]
    modalities: [text, image, document]
  - name: claude-direct
    deployments: [{{provider: anth, model: claude-3-haiku-20240307}}]
  - name: throttled
    deployments: [{{provider: aws-429, model: us.amazon.nova-lite-v1:0}}]
keys:
  - {{key: {key}, name: main}}
router: {{retries: 0, backoff_s: 0}}
"""
# Served by: Bedrock (InvokeModel / Converse), the OpenAI protocol, the Anthropic protocol.
UPSTREAM = {
    "anthropic.claude-3-haiku-20240307-v1:0": "/invoke",
    "us.amazon.nova-lite-v1:0": "/converse",
    "gpt-4o": "/v1/chat/completions",
    "claude-direct": "/v1/messages",
}
SERVICE = ServiceModel(Loader().load_service_model("bedrock-runtime", "service-2"), "bedrock-runtime")


def converse_shape_ok(body: dict[str, Any]) -> dict[str, Any]:
    """Parse a body with botocore's own Converse response parser (it must fit the service model)."""
    parsed = RestJSONParser().parse({"status_code": 200, "headers": {}, "body": orjson.dumps(body)}, SERVICE.operation_model("Converse").output_shape)
    assert {"output", "stopReason", "usage", "metrics"} <= set(parsed)
    return parsed


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    s = start_simulator()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def config_text(sim: RunningSimulator) -> str:
    return CONFIG.format(sim=sim.base_url, ak=AWS_ACCESS_KEY_ID, sk=AWS_SECRET_ACCESS_KEY, key=KEY)


@pytest.fixture(scope="module")
def gw(config_text: str) -> Iterator[RunningGateway]:
    g = start_gateway(config_text, steps=[])
    yield g
    g.stop()


@pytest.fixture(scope="module")
def tls_gateway(config_text: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The same gateway behind HTTPS: (base URL, CA file)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed for a test certificate")
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    running = serve_app(Gateway(parse_config(config_text), steps=[]), ssl_certfile=cert, ssl_keyfile=key)
    yield running.base_url, cert
    running.stop()


_CLIENTS: list[Any] = []


def bedrock_client(tls_gateway: tuple[str, str], monkeypatch: pytest.MonkeyPatch, token: str = KEY, prefix: str = "/proxy/api/v1") -> Any:
    """boto3 as a user would set it up with a Bedrock API key, only the endpoint pointed at lmgate."""
    base, ca = tls_gateway
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", token)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=base + prefix, verify=ca, config=BotoConfig(retries={"total_max_attempts": 1}))
    _CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Kept-alive TLS connections would hold up the server's shutdown."""
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


# ---------------------------------------------------------------- 004's requests snippets


@pytest.mark.parametrize("model_id", list(UPSTREAM))
def test_004_anthropic_snippet(gw: RunningGateway, sim: RunningSimulator, model_id: str) -> None:
    LLM_Gateway_SERVER_URL = gw.base_url + "/proxy/api/v1/"
    lm_key = KEY
    modelId = model_id
    headers = {"api-key": f"{lm_key}"}
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 512, "messages": [{"role": "user", "content": "say my name bot."}]}
    response = requests.post(f"{LLM_Gateway_SERVER_URL}/bedrock/v1/messages/anthropic?modelId={modelId}", headers=headers, json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["type"] == "message" and data["role"] == "assistant" and data["stop_reason"] == "end_turn"
    assert 'you said "say my name bot."' in data["content"][0]["text"]
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0
    assert float(response.headers["x-lmgate-cost"]) >= 0
    sent = sim.last_request()
    assert sent["path"].endswith(UPSTREAM[model_id])
    if model_id.startswith("anthropic."):  # forwarded to InvokeModel as it came
        assert sent["body"] == body


@pytest.mark.parametrize("model_id", ["meta.llama3-1-8b-instruct-v1:0", "gpt-4o"])
def test_004_llama_snippet(gw: RunningGateway, sim: RunningSimulator, model_id: str) -> None:
    LLM_Gateway_SERVER_URL = gw.base_url + "/proxy/api/v1/"
    lm_key = KEY
    modelId = model_id
    headers = {"api-key": f"{lm_key}"}
    body = {
        "messages": [{"role": "user", "content": [{"text": "Hello World"}]}],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9},
        "system": [{"text": "This is a valid system text"}],
    }
    response = requests.post(f"{LLM_Gateway_SERVER_URL}/bedrock/v1/messages/llama?modelId={modelId}", headers=headers, json=body)
    assert response.status_code == 200, response.text
    parsed = converse_shape_ok(response.json())
    assert 'you said "Hello World"' in parsed["output"]["message"]["content"][0]["text"]
    assert parsed["stopReason"] == "end_turn" and parsed["usage"]["outputTokens"] > 0
    sent = sim.last_request()
    if model_id == "gpt-4o":
        assert sent["body"]["messages"][0] == {"role": "system", "content": "This is a valid system text"}
        assert (sent["body"]["max_tokens"], sent["body"]["temperature"], sent["body"]["top_p"]) == (512, 0.5, 0.9)
    else:
        assert sent["raw_path"] == "/model/meta.llama3-1-8b-instruct-v1%3A0/converse" and sent["body"] == body


def _nova(gw: RunningGateway, model_id: str, content: list[dict[str, Any]]) -> requests.Response:
    LLM_Gateway_SERVER_URL = gw.base_url + "/proxy/api/v1/"
    lm_key = KEY
    modelId = model_id
    body = json.dumps({
        "messages": [{"role": "user", "content": content}],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9},
        "system": [{"text": "This is a valid system text "}],
    })
    headers = {"api-key": lm_key}
    return requests.post(f"{LLM_Gateway_SERVER_URL}/bedrock/v1/messages/nova?modelId={modelId}", headers=headers, json=json.loads(body))


def test_004_nova_text(gw: RunningGateway) -> None:
    response = _nova(gw, "us.amazon.nova-lite-v1:0", [{"text": "Hello World"}])
    assert response.status_code == 200, response.text
    assert 'you said "Hello World"' in converse_shape_ok(response.json())["output"]["message"]["content"][0]["text"]


@pytest.mark.parametrize("model_id", ["us.amazon.nova-lite-v1:0", "gpt-4o"])
def test_004_nova_image(gw: RunningGateway, sim: RunningSimulator, model_id: str) -> None:
    encoded_image = base64.b64encode(PNG).decode("utf-8")
    response = _nova(gw, model_id, [{"text": "what in this image describe the image also."}, {"image": {"format": "png", "source": {"bytes": encoded_image}}}])
    assert response.status_code == 200, response.text
    assert "1 image" in converse_shape_ok(response.json())["output"]["message"]["content"][0]["text"]
    if model_id == "gpt-4o":
        part = sim.last_request("/v1/chat/completions")["body"]["messages"][1]["content"][1]
        assert part == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + encoded_image}}


def test_004_nova_document(gw: RunningGateway, sim: RunningSimulator) -> None:
    encoded_docs = base64.b64encode(PDF).decode("utf-8")
    response = _nova(gw, "us.amazon.nova-pro-v1:0", [{"document": {"format": "pdf", "name": "DocumentPDFmessages", "source": {"bytes": encoded_docs}}}, {"text": "tell me the title of the document"}])
    assert response.status_code == 200, response.text
    assert "1 document" in converse_shape_ok(response.json())["output"]["message"]["content"][0]["text"]
    assert sim.last_request("/converse")["body"]["messages"][0]["content"][0]["document"]["name"] == "DocumentPDFmessages"


def test_004_nova_video(gw: RunningGateway) -> None:
    # 004 writes `headers = ({"api-key": lm_key},)`, a tuple that requests refuses before sending;
    # the dict it means is what reaches the gateway.
    encoded_video = base64.b64encode(MP4).decode("utf-8")
    response = _nova(gw, "us.amazon.nova-pro-v1:0", [{"text": "what in this video."}, {"video": {"format": "mp4", "source": {"bytes": encoded_video}}}])
    assert response.status_code == 200, response.text
    assert "1 video" in converse_shape_ok(response.json())["output"]["message"]["content"][0]["text"]


def test_004_errors_in_bedrock_shape(gw: RunningGateway) -> None:
    url = gw.base_url + "/proxy/api/v1/bedrock/v1/messages/nova"
    body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    r = requests.post(url + "?modelId=not-configured", headers={"api-key": KEY}, json=body)
    assert r.status_code == 404 and r.headers["x-amzn-ErrorType"] == "ResourceNotFoundException" and "not-configured" in r.json()["message"]
    r = requests.post(url + "?modelId=us.amazon.nova-lite-v1:0", headers={"api-key": "wrong-key-123"}, json=body)
    assert r.status_code == 401 and set(r.json()) == {"message"}
    r = requests.post(url, headers={"api-key": KEY}, json=body)
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "ValidationException"
    r = requests.post(url + "?modelId=us.amazon.nova-lite-v1:0", headers={"api-key": KEY}, json={"messages": [{"role": "user", "content": [{"text": 5}]}]})
    assert r.status_code == 422 and r.headers["x-amzn-ErrorType"] == "ValidationException"
    r = requests.post(url + "?modelId=throttled", headers={"api-key": KEY}, json=body)
    assert r.status_code == 429 and r.headers["x-amzn-ErrorType"] == "ThrottlingException"
    r = requests.post(gw.base_url + "/bedrock/v1/messages/mistral?modelId=gpt-4o", headers={"api-key": KEY}, json=body)
    assert r.status_code == 404 and "message" in r.json()


# ---------------------------------------------------------------- boto3 bedrock-runtime with a bearer key


@pytest.mark.parametrize("model_id", list(UPSTREAM))
def test_boto3_converse(tls_gateway: tuple[str, str], monkeypatch: pytest.MonkeyPatch, model_id: str) -> None:
    client = bedrock_client(tls_gateway, monkeypatch)
    r = client.converse(
        modelId=model_id,
        messages=[{"role": "user", "content": [{"text": "Hello World"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]}],
        system=[{"text": "be brief"}],
        inferenceConfig={"maxTokens": 300, "temperature": 0.2},
    )
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    text = r["output"]["message"]["content"][0]["text"]
    assert 'you said "Hello World"' in text and "1 image" in text
    assert r["stopReason"] == "end_turn" and r["usage"]["inputTokens"] > 0 and r["usage"]["outputTokens"] > 0
    assert r["metrics"]["latencyMs"] >= 0


@pytest.mark.parametrize("model_id", list(UPSTREAM))
def test_boto3_converse_stream(tls_gateway: tuple[str, str], monkeypatch: pytest.MonkeyPatch, model_id: str) -> None:
    client = bedrock_client(tls_gateway, monkeypatch)
    whole = client.converse(modelId=model_id, messages=[{"role": "user", "content": [{"text": "stream it"}]}])
    r = client.converse_stream(modelId=model_id, messages=[{"role": "user", "content": [{"text": "stream it"}]}])
    assert r["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
    events = list(r["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == whole["output"]["message"]["content"][0]["text"]
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    usage = events[-1]["metadata"]["usage"]
    assert usage["inputTokens"] == whole["usage"]["inputTokens"] > 0 and usage["outputTokens"] == whole["usage"]["outputTokens"] > 0


@pytest.mark.parametrize("model_id", ["us.amazon.nova-lite-v1:0", "gpt-4o", "claude-direct"])
def test_boto3_tools_round_trip(tls_gateway: tuple[str, str], monkeypatch: pytest.MonkeyPatch, model_id: str) -> None:
    client = bedrock_client(tls_gateway, monkeypatch)
    tool_config = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}]}
    ask = [{"role": "user", "content": [{"text": "Weather in Paris? [[sim: tool=get_weather]]"}]}]
    r = client.converse_stream(modelId=model_id, messages=ask, toolConfig=tool_config)
    events = list(r["stream"])
    start = next(e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e)
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e)
    assert start["name"] == "get_weather" and json.loads(args) == {"city": "Paris"}
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    first = client.converse(modelId=model_id, messages=ask, toolConfig=tool_config)
    use = first["output"]["message"]["content"][0]["toolUse"]
    assert first["stopReason"] == "tool_use" and use["input"] == {"city": "Paris"}
    answer = client.converse(modelId=model_id, toolConfig=tool_config, messages=[
        *ask, first["output"]["message"], {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"sky": "sunny"}}]}}]},
    ])
    assert 'the tool get_weather returned: {"sky":"sunny"}' in answer["output"]["message"]["content"][0]["text"]


@pytest.mark.parametrize("model_id", list(UPSTREAM))
def test_boto3_invoke_model_anthropic_body(tls_gateway: tuple[str, str], monkeypatch: pytest.MonkeyPatch, model_id: str) -> None:
    client = bedrock_client(tls_gateway, monkeypatch)
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200, "system": "brief", "messages": [{"role": "user", "content": "say my name bot."}]})
    r = client.invoke_model(modelId=model_id, body=body, contentType="application/json", accept="application/json")
    assert r["contentType"] == "application/json"
    data = json.loads(r["body"].read())
    assert data["type"] == "message" and 'you said "say my name bot."' in data["content"][0]["text"]
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) > 0 and int(headers["x-amzn-bedrock-output-token-count"]) > 0
    s = client.invoke_model_with_response_stream(modelId=model_id, body=body)
    chunks = [json.loads(e["chunk"]["bytes"]) for e in s["body"]]
    assert [c["type"] for c in chunks][:2] == ["message_start", "content_block_start"]
    assert chunks[-1]["type"] == "message_stop" and chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] > 0
    text = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
    assert text == data["content"][0]["text"]


def test_boto3_invoke_model_native_nova_and_llama(tls_gateway: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    client = bedrock_client(tls_gateway, monkeypatch, prefix="")
    nova = {"schemaVersion": "messages-v1", "messages": [{"role": "user", "content": [{"text": "Hello nova"}]}], "inferenceConfig": {"max_new_tokens": 100}}
    data = json.loads(client.invoke_model(modelId="us.amazon.nova-lite-v1:0", body=json.dumps(nova))["body"].read())
    assert 'you said "Hello nova"' in data["output"]["message"]["content"][0]["text"] and data["usage"]["outputTokens"] > 0
    chunks = [json.loads(e["chunk"]["bytes"]) for e in client.invoke_model_with_response_stream(modelId="gpt-4o", body=json.dumps(nova))["body"]]
    assert next(iter(chunks[0])) == "messageStart" and "amazon-bedrock-invocationMetrics" in chunks[-1]
    llama = {"prompt": "Hello llama", "max_gen_len": 100, "temperature": 0.5}
    data = json.loads(client.invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=json.dumps(llama))["body"].read())
    assert 'you said "Hello llama"' in data["generation"] and data["stop_reason"] == "stop" and data["generation_token_count"] > 0
    chunks = [json.loads(e["chunk"]["bytes"]) for e in client.invoke_model_with_response_stream(modelId="gpt-4o", body=json.dumps(llama))["body"]]
    assert "".join(c["generation"] for c in chunks).startswith("Simulated reply") and chunks[-1]["stop_reason"] == "stop"


def client_error(call: Any, **kwargs: Any) -> dict[str, Any]:
    """The error boto3 raised, as its parsed response (the exception, whose traceback would keep
    the TLS connection alive, is dropped at once)."""
    try:
        call(**kwargs)
    except ClientError as exc:
        return exc.response
    raise AssertionError("the call did not fail")


def test_boto3_errors(tls_gateway: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    client = bedrock_client(tls_gateway, monkeypatch)
    hi = [{"role": "user", "content": [{"text": "hi"}]}]
    missing = client_error(client.converse, modelId="not-configured", messages=hi)
    assert missing["Error"]["Code"] == "ResourceNotFoundException" and missing["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert client_error(client.converse, modelId="throttled", messages=hi)["Error"]["Code"] == "ThrottlingException"
    refused = client_error(bedrock_client(tls_gateway, monkeypatch, token="not-a-key-123").converse, modelId="gpt-4o", messages=hi)
    assert refused["Error"]["Code"] == "UnrecognizedClientException" and refused["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_boto3_stream_failure_mid_way_is_an_exception_event(tls_gateway: tuple[str, str], monkeypatch: pytest.MonkeyPatch, sim: RunningSimulator) -> None:
    """A stream that broke after it started ends with an event-stream exception boto3 raises."""
    from lmgate.surfaces.bedrock import stream_error
    from lmgate.errors import StreamInterrupted
    from lmgate.wire import eventstream

    (msg,) = eventstream.decode_all(stream_error(StreamInterrupted("the upstream broke off")))
    assert msg.message_type == "exception" and msg.headers[":exception-type"] == "modelStreamErrorException"
    client = bedrock_client(tls_gateway, monkeypatch)
    r = client.converse_stream(modelId="gpt-4o", messages=[{"role": "user", "content": [{"text": "[[sim: cut_after=3]] a long answer"}]}])
    failed = False
    try:
        list(r["stream"])
    except EventStreamError:
        failed = True
    r["stream"].close()
    assert failed
