"""Data URIs and base64 media: decoded and checked once, shared by every codec."""

from __future__ import annotations

import base64
import binascii

from lmgate.errors import BadRequest
from lmgate.types import MediaPart

_KIND_BY_PREFIX = (("image/", "image"), ("audio/", "audio"), ("video/", "video"))


def kind_of(media_type: str | None, default: str = "document") -> str:
    mt = (media_type or "").lower()
    for prefix, kind in _KIND_BY_PREFIX:
        if mt.startswith(prefix):
            return kind
    return default


def b64decode(data: str, what: str = "media") -> bytes:
    """Strict base64 (standard or URL-safe alphabet); bad input is the client's 400."""
    try:
        s = data.strip()
        if "-" in s or "_" in s:
            s = s.replace("-", "+").replace("_", "/")
        missing = (-len(s)) % 4
        if missing:
            s += "=" * missing
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"the {what} is not valid base64", code="invalid_base64") from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def parse_data_uri(uri: str, what: str = "media") -> tuple[str | None, bytes]:
    """`data:<type>[;base64],<payload>` -> (media type, bytes)."""
    head, sep, payload = uri.partition(",")
    if not sep or not head.startswith("data:"):
        raise BadRequest(f"the {what} data URI is malformed", code="invalid_data_uri")
    meta = head[5:].split(";")
    media_type = meta[0] or None
    if "base64" in meta[1:]:
        return media_type, b64decode(payload, what)
    from urllib.parse import unquote_to_bytes

    return media_type, unquote_to_bytes(payload)


def media_from_url(url: str, kind: str, detail: str | None = None, name: str | None = None) -> MediaPart:
    """An OpenAI-style url field (http(s) or data URI) as a MediaPart."""
    if url.startswith("data:"):
        media_type, data = parse_data_uri(url, kind)
        if kind == "image" and media_type == "application/pdf":
            kind = "document"
        return MediaPart(kind=kind, media_type=media_type, data=data, detail=detail, name=name)  # type: ignore[arg-type]
    if url.startswith(("http://", "https://")):
        return MediaPart(kind=kind, url=url, detail=detail, name=name)  # type: ignore[arg-type]
    raise BadRequest(f"the {kind} url must be an http(s) URL or a data URI", code="invalid_url")


def data_uri(part: MediaPart) -> str:
    return f"data:{part.media_type or 'application/octet-stream'};base64,{b64encode(part.data or b'')}"
