"""Bedrock runtime: boto3's own client (SigV4 signing, rest-json, event-stream parsing) is the judge."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError

from lmgate.simulator.eventstream import decode_messages
from lmgate.simulator.testing import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, RunningSimulator

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather",
                                 "inputSchema": {"json": {"type": "object", "required": ["city"],
                                                          "properties": {"city": {"type": "string"}}}}}}]}


def _client(url: str, secret: str = AWS_SECRET_ACCESS_KEY):  # type: ignore[no-untyped-def]
    return boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def bedrock(simulator: RunningSimulator):  # type: ignore[no-untyped-def]
    return _client(simulator.base_url)


def _user(text: str) -> dict:
    return {"role": "user", "content": [{"text": text}]}


def test_converse_whole_and_stream(bedrock, simulator: RunningSimulator) -> None:  # type: ignore[no-untyped-def]
    kwargs = dict(modelId=CLAUDE, messages=[_user("Summarise the history of Rome")],
                  system=[{"text": "Be brief."}], inferenceConfig={"maxTokens": 300})
    whole = bedrock.converse(**kwargs)
    text = whole["output"]["message"]["content"][0]["text"]
    assert "history of Rome" in text and whole["stopReason"] == "end_turn"
    usage = whole["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert whole["metrics"]["latencyMs"] > 0
    assert "%3A0/converse" in simulator.last_request("/converse")["raw_path"]
    events = list(bedrock.converse_stream(**kwargs)["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    streamed = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events
                       if "contentBlockDelta" in e)
    assert streamed == text and events[-1]["metadata"]["usage"] == usage


def test_converse_tool_round_trip(bedrock) -> None:  # type: ignore[no-untyped-def]
    ask = _user("Weather? [[sim: tool=auto]]")
    first = bedrock.converse(modelId=CLAUDE, messages=[ask], toolConfig=TOOLS)
    use = first["output"]["message"]["content"][0]["toolUse"]
    assert first["stopReason"] == "tool_use" and use["input"] == {"city": "Paris"}
    assert use["toolUseId"].startswith("tooluse_")
    reply = bedrock.converse(modelId=CLAUDE, toolConfig=TOOLS, messages=[
        ask, first["output"]["message"],
        {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"],
                                                     "content": [{"json": {"sky": "clear"}}]}}]}])
    assert '{"sky":"clear"}' in reply["output"]["message"]["content"][0]["text"]
    events = list(bedrock.converse_stream(modelId=CLAUDE, messages=[ask], toolConfig=TOOLS)["stream"])
    start = next(e for e in events if "contentBlockStart" in e)["contentBlockStart"]["start"]
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                   if "contentBlockDelta" in e)
    assert start["toolUse"]["name"] == "get_weather" and json.loads(args) == {"city": "Paris"}


def test_converse_media_blocks(bedrock) -> None:  # type: ignore[no-untyped-def]
    resp = bedrock.converse(modelId="amazon.nova-pro-v1:0", messages=[{"role": "user", "content": [
        {"text": "what are these?"},
        {"image": {"format": "png", "source": {"bytes": b"\x89PNG fake"}}},
        {"document": {"format": "pdf", "name": "Report 2024", "source": {"bytes": b"%PDF-1.4"}}},
        {"video": {"format": "mp4", "source": {"bytes": b"\0\0\0 ftyp"}}}]}])
    assert "1 document and 1 image and 1 video" in resp["output"]["message"]["content"][0]["text"]


@pytest.mark.parametrize("messages, tool_config, fragment", [
    ([{"role": "assistant", "content": [{"text": "hi"}]}], None, "must start with a user message"),
    ([_user("a"), _user("b")], None, "must alternate between user and assistant"),
    ([{"role": "user", "content": [{"text": "  "}]}], None, "is blank"),
    ([{"role": "user", "content": [{"document": {"format": "pdf", "name": "report.pdf",
                                                 "source": {"bytes": b"%PDF"}}}]}], None,
     "document file name can only contain"),
    ([_user("a"), {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f",
                                                                 "input": {}}}]},
      {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}]}],
     None, "toolConfig field must be defined"),
])
def test_validation_exceptions(bedrock, messages, tool_config, fragment) -> None:  # type: ignore[no-untyped-def]
    kwargs = {"toolConfig": tool_config} if tool_config else {}
    with pytest.raises(ClientError) as info:
        bedrock.converse(modelId=CLAUDE, messages=messages, **kwargs)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert fragment in info.value.response["Error"]["Message"]


def test_invoke_model_anthropic_body(bedrock) -> None:  # type: ignore[no-untyped-def]
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hello invoke"}]}
    resp = bedrock.invoke_model(modelId=CLAUDE, body=json.dumps(body))
    message = json.loads(resp["body"].read())
    assert message["type"] == "message" and "hello invoke" in message["content"][0]["text"]
    headers = resp["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-output-token-count"]) == message["usage"]["output_tokens"]
    stream = bedrock.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    assert [c["type"] for c in chunks][0] == "message_start" and chunks[-1]["type"] == "message_stop"
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == \
        message["usage"]["output_tokens"]
    text = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
    assert text == message["content"][0]["text"]
    with pytest.raises(ClientError) as info:
        bedrock.invoke_model(modelId=CLAUDE, body=json.dumps({**body, "model": "claude"}))
    assert "extraneous key [model]" in info.value.response["Error"]["Message"]


def test_invoke_other_families(bedrock) -> None:  # type: ignore[no-untyped-def]
    llama = json.loads(bedrock.invoke_model(
        modelId="meta.llama3-1-70b-instruct-v1:0",
        body=json.dumps({"prompt": "<|begin_of_text|>hello llama", "max_gen_len": 50}))["body"].read())
    assert llama["stop_reason"] == "stop" and "hello llama" in llama["generation"]
    nova = json.loads(bedrock.invoke_model(modelId="us.amazon.nova-lite-v1:0", body=json.dumps({
        "schemaVersion": "messages-v1", "messages": [_user("hello nova")],
        "inferenceConfig": {"maxTokens": 50}}))["body"].read())
    assert "hello nova" in nova["output"]["message"]["content"][0]["text"]
    titan = json.loads(bedrock.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps(
        {"inputText": "hello", "dimensions": 256}))["body"].read())
    assert len(titan["embedding"]) == 256 and titan["inputTextTokenCount"] == 2
    cohere = json.loads(bedrock.invoke_model(modelId="cohere.embed-english-v3", body=json.dumps(
        {"texts": ["a", "b"], "input_type": "search_document"}))["body"].read())
    assert len(cohere["embeddings"]) == 2 and cohere["response_type"] == "embeddings_floats"


def test_signature_is_verified(simulator: RunningSimulator) -> None:
    wrong = _client(simulator.base_url, secret="not-the-secret")
    with pytest.raises(ClientError) as info:
        wrong.converse(modelId=CLAUDE, messages=[_user("x")])
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unsigned = requests.post(simulator.base_url + f"/model/{CLAUDE}/converse",
                             json={"messages": [_user("x")]})
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")
    assert unsigned.json() == {"message": "Missing Authentication Token"}


def _signed_post(url: str, body: bytes) -> requests.Response:
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), "bedrock", "eu-west-1").add_auth(request)
    return requests.post(url, data=body, headers=dict(request.headers))


def test_event_stream_framing_on_the_wire(simulator: RunningSimulator) -> None:
    url = simulator.base_url + "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    resp = _signed_post(url, json.dumps({"messages": [_user("frame me")]}).encode())
    assert resp.headers["content-type"] == "application/vnd.amazon.eventstream"
    ours = decode_messages(resp.content)
    buffer = EventStreamBuffer()
    buffer.add_data(resp.content)
    theirs = list(buffer)  # botocore checks both CRCs and the lengths
    assert len(ours) == len(theirs) > 3
    assert ours[0][0] == {":event-type": "messageStart", ":content-type": "application/json",
                          ":message-type": "event"}
    assert theirs[-1].headers[":event-type"] == "metadata"


def test_throttling_knob_and_prefix(simulator: RunningSimulator, bedrock) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as info:
        bedrock.converse(modelId=CLAUDE, messages=[_user("x [[sim: status=429]]")])
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    prefixed = _client(simulator.url("status=503"))
    with pytest.raises(ClientError) as info:
        prefixed.converse(modelId=CLAUDE, messages=[_user("x")])
    assert info.value.response["Error"]["Code"] == "ServiceUnavailableException"


def test_invoke_stream_chunk_bytes_are_base64_json(simulator: RunningSimulator) -> None:
    url = simulator.base_url + "/model/meta.llama3-8b-instruct-v1%3A0/invoke-with-response-stream"
    resp = _signed_post(url, json.dumps({"prompt": "hi"}).encode())
    frames = decode_messages(resp.content)
    assert all(h[":event-type"] == "chunk" for h, _ in frames)
    last = json.loads(base64.b64decode(json.loads(frames[-1][1])["bytes"]))
    assert last["stop_reason"] == "stop" and "amazon-bedrock-invocationMetrics" in last
