"""Gemini embeddings, both directions: AI Studio's embedContent / batchEmbedContents and Vertex
AI's `:predict` for its text-embedding models. Pure functions over parsed JSON."""

from __future__ import annotations

from typing import Any

from lmgate.errors import BadRequest
from lmgate.types import EmbeddingRequest, EmbeddingResponse, Usage
from lmgate.wire import fields as f
from lmgate.wire.gemini import g

FORMAT = "gemini"
TASK_TYPES = frozenset(
    {"RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION", "CLUSTERING",
     "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"}
)
# The canonical input_type speaks Cohere's words (003 sends them on the OpenAI surface).
_TASK_OF = {"search_document": "RETRIEVAL_DOCUMENT", "search_query": "RETRIEVAL_QUERY", "classification": "CLASSIFICATION", "clustering": "CLUSTERING"}
_INPUT_OF = {v: k for k, v in _TASK_OF.items()}


def task_type(input_type: str | None) -> str | None:
    if not input_type:
        return None
    if input_type in _TASK_OF:
        return _TASK_OF[input_type]
    up = input_type.upper()
    return up if up in TASK_TYPES else None


def _text_of(content: Any, where: str) -> str:
    parts = g(content, "parts")
    if not isinstance(parts, list) or not parts:
        raise BadRequest(f"{where}.parts must not be empty", param=f"{where}.parts")
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


# ---------------------------------------------------------------- inbound (Gemini surface)


def parse_embed_request(body: dict[str, Any], model: str, batch: bool) -> EmbeddingRequest:
    """embedContent or batchEmbedContents as one canonical request (task type and size of the first)."""
    if batch:
        requests = g(body, "requests")
        if not isinstance(requests, list) or not requests:
            raise BadRequest("requests must not be empty", code="missing_field", param="requests")
    else:
        requests = [body]
    inputs = []
    for i, r in enumerate(requests):
        where = f"requests[{i}]" if batch else "content"
        if not isinstance(r, dict) or g(r, "content") is None:
            raise BadRequest(f"{where}: content is not specified", code="missing_field", param=where)
        inputs.append(_text_of(g(r, "content"), where))
    first = requests[0]
    task = g(first, "taskType")
    dims = g(first, "outputDimensionality")
    if dims is not None:
        f.check(dims, "outputDimensionality", int)
    return EmbeddingRequest(
        model=model,
        inputs=inputs,
        input_type=_INPUT_OF.get(task, task) if isinstance(task, str) else None,
        dimensions=dims,
        raw=body,
        raw_format=FORMAT,
    )


def render_embed_response(resp: EmbeddingResponse, batch: bool) -> dict[str, Any]:
    if batch:
        return {"embeddings": [{"values": v} for v in resp.vectors]}
    return {"embedding": {"values": resp.vectors[0] if resp.vectors else []}}


# ---------------------------------------------------------------- outbound: AI Studio


def render_batch_request(req: EmbeddingRequest, model: str, inputs: list[str]) -> dict[str, Any]:
    task = task_type(req.input_type)
    requests = []
    for text in inputs:
        r: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if task:
            r["taskType"] = task
        if req.dimensions:
            r["outputDimensionality"] = req.dimensions
        requests.append(r)
    return {"requests": requests}


def parse_batch_response(body: Any) -> list[list[float]]:
    embeddings = body.get("embeddings") if isinstance(body, dict) else None
    if not isinstance(embeddings, list):
        return []
    return [list(e.get("values") or []) for e in embeddings if isinstance(e, dict)]


# ---------------------------------------------------------------- outbound: Vertex :predict


def render_predict_request(req: EmbeddingRequest, inputs: list[str]) -> dict[str, Any]:
    task = task_type(req.input_type)
    instances = []
    for text in inputs:
        inst: dict[str, Any] = {"content": text}
        if task:
            inst["task_type"] = task
        instances.append(inst)
    body: dict[str, Any] = {"instances": instances}
    if req.dimensions:
        body["parameters"] = {"outputDimensionality": req.dimensions}
    return body


def parse_predict_response(body: Any) -> tuple[list[list[float]], Usage]:
    """predictions[].embeddings.values, with token counts and Vertex's billable characters."""
    if not isinstance(body, dict):
        return [], Usage()
    vectors: list[list[float]] = []
    tokens = 0
    for p in body.get("predictions") or []:
        emb = (p or {}).get("embeddings") or {}
        vectors.append(list(emb.get("values") or []))
        tokens += int((emb.get("statistics") or {}).get("token_count") or 0)
    chars = int(g(body.get("metadata") or {}, "billableCharacterCount") or 0)
    return vectors, Usage(input_tokens=tokens, input_chars=chars)
