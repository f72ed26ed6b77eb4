"""AWS Signature Version 4, written with hashlib/hmac (no botocore at run time).

The canonical request is built from exactly what is sent: the path as it goes on the wire
(already percent-encoded, e.g. a Bedrock model id's `:` as `%3A`) is URI-encoded once more, as
SigV4 asks of every service but S3; the query is sorted and encoded; the signed headers are
lower-cased, trimmed and sorted. The tests recompute every signature with botocore.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = "-_.~"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def path_segment(value: str) -> str:
    """A value placed in one URL path segment, encoded as AWS SDKs do (`:` -> `%3A`, `/` -> `%2F`)."""
    return quote(value, safe=_UNRESERVED)


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for seg in path.split("/"):
        if seg == ".":
            continue
        if seg == "..":
            if len(out) > 1:
                out.pop()
            continue
        out.append(seg)
    normal = "/".join(out)
    if path.endswith(("/.", "/..")):
        normal += "/"
    return normal if normal.startswith("/") else "/" + normal


def canonical_uri(path: str) -> str:
    """The request path, normalised, then URI-encoded again (the `%` of `%3A` becomes `%25`)."""
    return quote(_remove_dot_segments(path or "/"), safe="/~")


def canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe=_UNRESERVED), quote(unquote(value), safe=_UNRESERVED)))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_headers(headers: dict[str, str]) -> tuple[str, str]:
    folded: dict[str, list[str]] = {}
    for name, value in headers.items():
        folded.setdefault(name.lower().strip(), []).append(" ".join(str(value).split()))
    names = sorted(folded)
    block = "".join(f"{n}:{','.join(folded[n])}\n" for n in names)
    return block, ";".join(names)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str = "bedrock",
    now: float | None = None,
) -> dict[str, str]:
    """The headers to send: `headers` plus Host, X-Amz-Date, X-Amz-Security-Token and Authorization.

    Every header given is signed; `url` must be the URL exactly as it goes on the wire.
    """
    parts = urlsplit(url)
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    date = amz_date[:8]
    out = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "host", "x-amz-date", "x-amz-security-token")}
    out["Host"] = parts.netloc
    out["X-Amz-Date"] = amz_date
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    header_block, signed = _canonical_headers(out)
    canonical = "\n".join(
        [
            method.upper(),
            canonical_uri(parts.path),
            canonical_query(parts.query),
            header_block,
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    signature = hmac.new(signing_key(credentials.secret_access_key, date, region, service), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    return out
