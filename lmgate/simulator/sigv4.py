"""AWS Signature Version 4 verification of a received request, recomputed with botocore.

The canonical request is rebuilt from what arrived (method, raw path, raw query, the signed
headers, the body) and signed again with the configured secret; botocore applies the same URI
encoding rules (path segments encoded twice for non-S3 services) as a correct client.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from aiohttp import web

from lmgate.simulator.state import SimulatorConfig

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*"
    r"Signature=([0-9a-f]{64})\s*$"
)
UNSIGNED = "UNSIGNED-PAYLOAD"


@dataclass(slots=True)
class AuthFailure(Exception):
    """A refused signature: AWS's error type, status and message."""

    status: int
    etype: str
    message: str


def _fail(etype: str, message: str, status: int = 403) -> AuthFailure:
    return AuthFailure(status, etype, message)


def _expected_signature(
    request: web.Request, body: bytes, signed: list[str], amz_date: str, region: str,
    service: str, config: SimulatorConfig,
) -> str:
    try:  # botocore is a test dependency; only Bedrock routes need it
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:  # pragma: no cover - botocore is installed wherever tests run
        raise _fail("InternalServerException",
                    "The simulator needs botocore to verify SigV4 signatures.", 500) from None

    headers = {}
    for name in signed:
        values = request.headers.getall(name, [])
        headers[name] = ",".join(values)
    url = f"http://{request.headers.get('Host', request.host)}{request.raw_path}"
    aws_request = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    aws_request.context["timestamp"] = amz_date
    signer = SigV4Auth(
        Credentials(config.aws_access_key_id, config.aws_secret_access_key), service, region
    )
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)


def verify(request: web.Request, body: bytes, config: SimulatorConfig, service: str = "bedrock"
           ) -> str:
    """Check the request's SigV4 signature; returns the region. Raises AuthFailure."""
    auth = request.headers.get("Authorization")
    if not auth:
        raise _fail("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH_RE.match(auth.strip())
    if not match:
        raise _fail(
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential' parameter. Authorization header "
            f"requires 'Signature' parameter. Authorization header requires 'SignedHeaders' "
            f"parameter. Authorization={auth[:40]}",
            400,
        )
    credential, signed_headers, signature = match.groups()
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise _fail("IncompleteSignatureException",
                    f"Credential should have 5 parts: {credential}", 400)
    access_key, date, region, scoped_service, _ = scope
    if access_key != config.aws_access_key_id:
        raise _fail("UnrecognizedClientException",
                    "The security token included in the request is invalid.")
    if scoped_service != service:
        raise _fail("InvalidSignatureException",
                    f"Credential should be scoped to correct service: '{service}'. ")
    amz_date = request.headers.get("X-Amz-Date", "")
    if not re.match(r"^\d{8}T\d{6}Z$", amz_date):
        raise _fail("IncompleteSignatureException",
                    "Authorization header requires existence of either a 'X-Amz-Date' or a "
                    "'Date' header.", 400)
    if amz_date[:8] != date:
        raise _fail("InvalidSignatureException",
                    f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                    f"date from HTTP: '{date}' != '{amz_date[:8]}', from '{amz_date}'.")
    signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    if abs(time.time() - signed_at) > config.aws_max_skew_s:
        raise _fail("InvalidSignatureException",
                    f"Signature expired: {amz_date} is now earlier than the allowed skew "
                    f"({config.aws_max_skew_s // 60} min.)")
    signed = signed_headers.split(";")
    if "host" not in signed:
        raise _fail("InvalidSignatureException",
                    "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    declared = request.headers.get("X-Amz-Content-SHA256")
    if declared and declared != UNSIGNED and declared != hashlib.sha256(body).hexdigest():
        raise _fail("XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was "
                    "computed.", 400)
    expected = _expected_signature(request, body, signed, amz_date, region, service, config)
    if not hmac.compare_digest(expected, signature):
        raise _fail("InvalidSignatureException",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your AWS Secret Access Key and signing method. Consult the "
                    "service documentation for details.")
    return region
