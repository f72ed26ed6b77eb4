"""Cohere's Embed API v2 (`POST /v2/embed`), outbound: pure functions over parsed JSON."""

from __future__ import annotations

from typing import Any

from lmgate.types import EmbeddingRequest, Usage

FORMAT = "cohere"
MAX_TEXTS = 96  # Cohere: at most 96 texts per call
INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering", "image"})
DEFAULT_INPUT_TYPE = "search_document"  # v3+ models require one; 003 embeds documents
# Gemini's task types, when a Gemini client's request reaches a Cohere model.
_FROM_TASK = {"RETRIEVAL_DOCUMENT": "search_document", "RETRIEVAL_QUERY": "search_query", "CLASSIFICATION": "classification", "CLUSTERING": "clustering"}


def input_type(req: EmbeddingRequest) -> str:
    value = req.input_type or ""
    if value in INPUT_TYPES:
        return value
    return _FROM_TASK.get(value.upper(), DEFAULT_INPUT_TYPE)


def render_embed_request(req: EmbeddingRequest, model: str, texts: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "texts": texts, "input_type": input_type(req), "embedding_types": ["float"]}
    if req.dimensions:
        body["output_dimension"] = req.dimensions
    truncate = req.extra.get("truncate") if req.raw_format == "openai" else None
    if truncate in ("NONE", "START", "END"):
        body["truncate"] = truncate
    return body


def parse_embed_response(body: Any) -> tuple[list[list[float]], Usage]:
    """`embeddings.float` (embeddings_by_type) or a bare list (embeddings_floats), and billed input tokens."""
    if not isinstance(body, dict):
        return [], Usage()
    emb = body.get("embeddings")
    vectors = emb.get("float") if isinstance(emb, dict) else emb
    meta = body.get("meta") or {}
    billed = meta.get("billed_units") or {}
    tokens = billed.get("input_tokens") or (meta.get("tokens") or {}).get("input_tokens") or 0
    return [list(v) for v in vectors or []], Usage(input_tokens=int(tokens))
