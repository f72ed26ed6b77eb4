"""Vertex AI Gemini and the OAuth2 token endpoint a service account's `token_uri` points at.

`POST /token` takes the JWT-bearer grant google-auth sends, checks the assertion's shape and
claims (the RSA signature itself is not verified: there is no key registry), and issues an
access token; Vertex routes accept only tokens issued here.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import orjson
from aiohttp import web

from lmgate.simulator.answer import count_tokens, embedding_vector
from lmgate.simulator.common import (
    SimError, apply_knobs, bearer_token, json_response, log_body, new_id, read_json,
    resolve_knobs, state_of,
)
from lmgate.simulator.gemini import (
    EMBED_DIMS, count_tokens_answer, embed_answer, generate, google_error,
)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_MAX_LIFETIME = 3600
_SKEW = 300


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return json_response({"error": error, "error_description": description}, status=status)


def _check_assertion(assertion: str, token_url: str) -> str | None:
    """Return an error description, or None when the assertion is acceptable."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return "Invalid JWT: Token must be a signed JWT."
    try:
        header = orjson.loads(_b64url(parts[0]))
        claims = orjson.loads(_b64url(parts[1]))
        signature = _b64url(parts[2])
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return "Invalid JWT Signature."
    if not isinstance(header, dict) or header.get("alg") != "RS256" or len(signature) < 64:
        return "Invalid JWT Signature."
    if not isinstance(claims, dict):
        return "Invalid JWT Signature."
    iss = claims.get("iss")
    if not isinstance(iss, str) or "@" not in iss:
        return "Invalid JWT: iss claim is missing or is not a service account email."
    if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, token_url):
        return f"Invalid JWT: Failed audience check. The expected value was {token_url}"
    iat, exp = claims.get("iat"), claims.get("exp")
    now = time.time()
    if (not isinstance(iat, (int, float)) or not isinstance(exp, (int, float))
            or exp <= iat or exp - iat > _MAX_LIFETIME or iat > now + _SKEW or exp < now - _SKEW):
        return ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim.")
    return None


async def token(request: web.Request) -> web.Response:
    """POST /token: OAuth2 JWT-bearer grant, as Google's token endpoint answers it."""
    form = await request.post()
    log_body(request, {k: str(v) for k, v in form.items()})
    grant = form.get("grant_type")
    if grant != JWT_GRANT:
        return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant or ''}")
    assertion = str(form.get("assertion") or "")
    token_url = f"{request.scheme}://{request.host}{request.path}"
    problem = _check_assertion(assertion, token_url)
    if problem:
        return _oauth_error("invalid_grant", problem)
    claims = orjson.loads(_b64url(assertion.split(".")[1]))
    if not str(claims.get("scope", "")).strip():
        return _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    access = "ya29.sim-" + new_id("", 32)
    ttl = state_of(request).issue_token(access)
    return json_response({"access_token": access, "expires_in": ttl - 1, "token_type": "Bearer"})


def _check_token(request: web.Request) -> None:
    tok = bearer_token(request)
    if not tok or not state_of(request).token_valid(tok):
        raise SimError(401, "Request had invalid authentication credentials. Expected OAuth 2 "
                       "access token, login cookie or other valid authentication credential. See "
                       "https://developers.google.com/identity/sign-in/web/devconsole-project.")


async def _predict(request: web.Request, body: Any, model: str) -> web.Response:
    """Text embeddings through `:predict`, in Vertex's instances/predictions shape."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list) \
            or not body["instances"]:
        raise SimError(400, "Invalid JSON payload received. instances must be a non-empty list.")
    params = body.get("parameters") or {}
    full = EMBED_DIMS.get(model, 768)
    dims = params.get("outputDimensionality") or full
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise SimError(400, "Invalid outputDimensionality.")
    texts = []
    for i, inst in enumerate(body["instances"]):
        if not isinstance(inst, dict) or not isinstance(inst.get("content"), str):
            raise SimError(400, f"Invalid instance at index {i}: content must be a string.")
        texts.append(inst["content"])
    knobs, key, _ = resolve_knobs(request, "\n".join(t for t in texts if "[[sim:" in t))
    await apply_knobs(request, knobs, key, stream=False)
    predictions = [{"embeddings": {"values": embedding_vector(t, min(dims, full)),
                                   "statistics": {"token_count": count_tokens(len(t)),
                                                  "truncated": False}}} for t in texts]
    return json_response({"predictions": predictions,
                          "metadata": {"billableCharacterCount": sum(len(t) for t in texts)}})


async def publisher_action(request: web.Request) -> web.StreamResponse:
    """POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{action}

    generateContent, streamGenerateContent, predict (text embeddings), embedContent,
    batchEmbedContents, countTokens.
    """
    model, _, action = request.match_info["target"].rpartition(":")
    try:
        _check_token(request)
        try:
            body = await read_json(request)
        except ValueError as exc:
            raise SimError(400, f"Invalid JSON payload received. {exc}") from None
        if action in ("generateContent", "streamGenerateContent"):
            return await generate(request, body, model, stream=action != "generateContent",
                                  vertex=True)
        if action == "predict":
            return await _predict(request, body, model)
        if action in ("embedContent", "batchEmbedContents"):
            return await embed_answer(request, body, model, action == "batchEmbedContents")
        if action == "countTokens":
            return count_tokens_answer(body, model)
        raise SimError(404, f"Method {action} not found for publishers/google/models/{model}.")
    except SimError as err:
        return google_error(err, model)


_PATH = "/projects/{project}/locations/{location}/publishers/google/models/{target}"
ROUTES = [
    ("POST", "/token", token),
    ("POST", "/v1" + _PATH, publisher_action),
    ("POST", "/v1beta1" + _PATH, publisher_action),
]
