"""Our SigV4 signatures, recomputed independently with botocore's SigV4Auth."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from lmgate.providers import sigv4
from lmgate.providers.sigv4 import Credentials, canonical_query, canonical_uri, path_segment, sign

NOW = datetime.datetime(2024, 5, 17, 12, 30, 45)
KEY = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def botocore_headers(monkeypatch: pytest.MonkeyPatch, url: str, headers: dict[str, str], body: bytes, creds: Credentials, region: str, service: str) -> dict[str, str]:
    """What botocore itself sends for the same request, signed at NOW."""
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *a, **k: NOW)
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(BotoCredentials(creds.access_key_id, creds.secret_access_key, creds.session_token), service, region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "us.amazon.nova-lite-v1:0",
        "meta.llama3-1-8b-instruct-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
    ],
)
@pytest.mark.parametrize("operation", ["converse", "converse-stream", "invoke-with-response-stream"])
def test_bedrock_signature_matches_botocore(monkeypatch: pytest.MonkeyPatch, model: str, operation: str) -> None:
    url = f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{path_segment(model)}/{operation}"
    body = b'{"messages":[{"role":"user","content":[{"text":"Hello World"}]}]}'
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    ours = sign("POST", url, headers, body, KEY, "us-east-1", "bedrock", now=NOW.replace(tzinfo=datetime.timezone.utc).timestamp())
    theirs = botocore_headers(monkeypatch, url, headers, body, KEY, "us-east-1", "bedrock")
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"] == "20240517T123045Z"
    assert ours["Authorization"] == theirs["Authorization"]


def test_session_token_is_sent_and_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    creds = Credentials("ASIAEXAMPLE", "secret/with+chars", "FQoGZXIvYXdzE//session==token")
    url = "https://bedrock-runtime.eu-west-1.amazonaws.com/model/amazon.nova-pro-v1%3A0/converse"
    ours = sign("POST", url, {"Content-Type": "application/json"}, b"{}", creds, "eu-west-1", now=NOW.replace(tzinfo=datetime.timezone.utc).timestamp())
    theirs = botocore_headers(monkeypatch, url, {"Content-Type": "application/json"}, b"{}", creds, "eu-west-1", "bedrock")
    assert ours["X-Amz-Security-Token"] == creds.session_token
    assert "x-amz-security-token" in ours["Authorization"]
    assert ours["Authorization"] == theirs["Authorization"]


def test_query_and_odd_paths_match_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://example.amazonaws.com/a/./b/../c%20d/~e?b=2&a=%2F%20x&a=1&empty="
    headers = {"Content-Type": "text/plain", "X-Custom": "  two   spaces  "}
    ours = sign("POST", url, headers, b"payload", KEY, "us-west-2", "execute-api", now=NOW.replace(tzinfo=datetime.timezone.utc).timestamp())
    theirs = botocore_headers(monkeypatch, url, headers, b"payload", KEY, "us-west-2", "execute-api")
    assert ours["Authorization"] == theirs["Authorization"]


def test_model_id_is_encoded_twice_in_the_canonical_uri() -> None:
    path = "/model/" + path_segment("anthropic.claude-3-haiku-20240307-v1:0") + "/converse"
    assert path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert canonical_uri(path) == "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
    assert path_segment("arn:aws:bedrock:us-east-1:1:inference-profile/x") == "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx"
    assert canonical_query("b=2&a=1") == "a=1&b=2"


def test_signing_key_follows_the_documented_example() -> None:
    # AWS's documented derivation example (secret, 20120215, us-east-1, iam).
    key = sigv4.signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    assert hashlib.sha256(b"").hexdigest().startswith("e3b0c442")
