"""Cohere Embed API v2: `POST /v2/embed` with `Authorization: Bearer`.

Checked as Cohere checks it (at most 96 texts, `input_type` required for v3+ models, known
embedding types); errors are Cohere's `{"message": ...}` bodies.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from aiohttp import web

from lmgate.simulator.answer import count_tokens, embedding_vector
from lmgate.simulator.common import (
    SimError, apply_knobs, bearer_token, json_response, key_rejected, new_id, read_json,
    resolve_knobs,
)

MAX_TEXTS = 96
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary", "base64")
DIMS = {"embed-english-v3.0": 1024, "embed-multilingual-v3.0": 1024,
        "embed-english-light-v3.0": 384, "embed-multilingual-light-v3.0": 384,
        "embed-v4.0": 1536}
_MESSAGES = {
    401: "invalid api token",
    404: "model not found, make sure the correct model ID was used and that you have access "
         "to the model.",
    429: "You are using a Trial key, which is limited to 100 API calls / minute. You can "
         "continue to use the Trial key for free or upgrade to a Production key with higher "
         "rate limits at 'https://dashboard.cohere.com/api-keys'.",
    500: "internal server error, this has been reported to our developers. id " + "sim",
    503: "service unavailable",
}


def cohere_error(err: SimError) -> web.Response:
    headers = {"x-request-id": new_id("", 32)}
    if err.retry_after is not None:
        headers["Retry-After"] = str(int(err.retry_after))
    message = err.message or _MESSAGES.get(err.status, f"error {err.status}")
    return json_response({"id": new_id("", 36), "message": message}, status=err.status,
                         headers=headers)


def _bad(message: str) -> SimError:
    return SimError(400, message)


def _needs_input_type(model: str) -> bool:
    return "v2.0" not in model


def _typed(kind: str, vector: list[float]) -> Any:
    if kind == "float":
        return vector
    if kind == "int8":
        return [max(-128, min(127, round(v * 127 * 8))) for v in vector]
    if kind == "uint8":
        return [max(0, min(255, round(v * 127 * 8) + 128)) for v in vector]
    if kind == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    bits = [1 if v > 0 else 0 for v in vector]
    packed = [int("".join(map(str, bits[i : i + 8])).ljust(8, "0"), 2)
              for i in range(0, len(bits), 8)]
    return packed if kind == "ubinary" else [b - 128 for b in packed]


async def embed(request: web.Request) -> web.Response:
    """POST /v2/embed"""
    try:
        token = bearer_token(request)
        if token is None or token == "":
            raise SimError(401, "no api key supplied")
        if key_rejected(token):
            raise SimError(401)
        try:
            body = await read_json(request)
        except ValueError:
            raise _bad("invalid request: could not parse the request body as JSON") from None
        if not isinstance(body, dict):
            raise _bad("invalid request: request body must be a JSON object")
        model = body.get("model")
        if not model:
            raise _bad("invalid request: model must be specified")
        texts = body.get("texts")
        if texts is None and body.get("inputs") is None and body.get("images") is None:
            raise _bad("invalid request: one of texts, images or inputs must be specified")
        texts = texts or []
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise _bad("invalid request: texts must be a list of strings")
        if len(texts) > MAX_TEXTS:
            raise _bad(f"invalid request: total number of texts must be at most {MAX_TEXTS} - "
                       f"received {len(texts)}")
        input_type = body.get("input_type")
        if input_type is None and _needs_input_type(model):
            raise _bad("invalid request: valid input_type must be provided with the provided "
                       "model")
        if input_type is not None and input_type not in INPUT_TYPES:
            raise _bad(f"invalid request: input_type must be one of {', '.join(INPUT_TYPES)} - "
                       f"received {input_type}")
        kinds = body.get("embedding_types") or ["float"]
        for kind in kinds:
            if kind not in EMBEDDING_TYPES:
                raise _bad(f"invalid request: embedding_types must be one of "
                           f"{', '.join(EMBEDDING_TYPES)} - received {kind}")
        dims = body.get("output_dimension") or DIMS.get(model, 1024)
        knobs, key, _ = resolve_knobs(request, "\n".join(t for t in texts if "[[sim:" in t))
        await apply_knobs(request, knobs, key, stream=False)
        vectors = [embedding_vector(t, dims) for t in texts]
        tokens = sum(count_tokens(len(t)) for t in texts)
        return json_response({
            "id": new_id("", 36),
            "embeddings": {kind: [_typed(kind, v) for v in vectors] for kind in kinds},
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
            "response_type": "embeddings_by_type",
        })
    except SimError as err:
        return cohere_error(err)


ROUTES = [("POST", "/v2/embed", embed)]
