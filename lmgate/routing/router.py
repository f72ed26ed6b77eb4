"""Model name -> deployments, and the one retry/fallback loop every endpoint goes through.

The loop, per request (decisions documented in docs/ROUTING.md):
- candidates are the deployments that may be called now: not cooling down, not inside an
  upstream's Retry-After, and with headroom under their own rpm/tpm; the model's strategy picks one;
- a failed attempt (connect error, timeout, 429, 5xx, a stream that failed before its first event)
  goes to another deployment of the same model at once; when each was tried, to the model's
  `fallbacks` in order; only then a deployment already tried is tried again, after an exponential
  backoff with jitter; `router.retries` bounds the failures;
- client errors end the loop at once and never count against a deployment, except that
  context_length_exceeded and content_filter switch to the model's context / content-filter fallbacks;
- the whole loop lives within one time budget (the longest of `router.timeout` and the model's
  deployment timeouts): a wait that would end after it fails fast instead;
- when nothing may be called now: a short wait (at most `max_backoff_s`) for a Retry-After or a
  capacity window to pass; else, if every candidate is only cooling down, one last-resort call to
  the least recently failed (with a warning); else 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

from lmgate.catalog.catalog import CHARS_PER_TOKEN, Catalog, ModelInfo
from lmgate.config import Config, ModelConfig, RouterConfig
from lmgate.errors import (
    ContentFiltered,
    ContextLengthExceeded,
    GatewayError,
    ModelNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from lmgate.providers.base import Call, Provider
from lmgate.routing.capacity import Entry, Window
from lmgate.routing.health import Health
from lmgate.routing import strategies
from lmgate.routing.strategies import STRATEGIES, Choose
from lmgate.types import Attempt, RequestContext, Usage

T = TypeVar("T")

# Final statuses of a stream, after it was handed to the client, that are the upstream's fault.
_STREAM_FAULTS = frozenset({429, 502, 503, 504})
_BUDGET_CODE = "request_timeout"  # our own time budget ran out: says nothing about the deployment


@dataclass(slots=True, eq=False)
class Deployment:
    """One place a model is served, resolved at start (provider object, timeouts), with its live state."""

    name: str
    model_name: str  # the client-facing model
    provider: Provider
    upstream_model: str
    weight: float
    rpm: int | None
    tpm: int | None
    call: Call  # timeouts and options, shared by every call to this deployment
    health: Health = field(default_factory=lambda: Health(3, 30.0))
    capacity: Window | None = None  # None: no rpm/tpm configured, nothing to count
    unit_cost: float = math.inf  # USD per 1M input + 1M output tokens of the upstream model

    def ready(self, now: float, tokens: int) -> bool:
        return self.health.available(now) and (self.capacity is None or self.capacity.headroom(now, tokens))

    def free(self, entry: Entry | None, tokens: int | None) -> None:
        """A call ended: one fewer in flight, its capacity entry settled (`tokens` really used, when known)."""
        self.health.in_flight -= 1
        if entry is not None and self.capacity is not None:
            self.capacity.settle(entry, tokens)


@dataclass(slots=True)
class ModelRoute:
    name: str
    info: ModelInfo
    deployments: list[Deployment]
    fallbacks: list[str] = field(default_factory=list)
    context_fallbacks: list[str] = field(default_factory=list)
    content_filter_fallbacks: list[str] = field(default_factory=list)
    strategy: str = "weighted"
    cache: bool | None = None
    budget_s: float = 60.0  # the whole request's time for attempts, waits and retries
    chain: list["ModelRoute"] = field(default_factory=list)  # itself, then its fallbacks (set by Router)
    choose: Choose = strategies.weighted  # the strategy's function (set by Router)

    def too_small(self, tokens: int) -> bool:
        window = self.info.context_window
        return bool(tokens and window and tokens > window)


@dataclass(slots=True)
class Lease:
    """A stream's hold on the deployment that serves it, released when the stream ends."""

    dep: Deployment
    entry: Entry | None
    attempt: Attempt


class Router:
    def __init__(
        self,
        config: RouterConfig,
        routes: dict[str, ModelRoute],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.routes = routes
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        for r in routes.values():
            r.chain = [r, *(routes[n] for n in r.fallbacks if n in routes and n != r.name)]
            r.choose = STRATEGIES[r.strategy]

    def route(self, model: str) -> ModelRoute:
        found = self.routes.get(model)
        if found is None:
            raise ModelNotFound(f"the model '{model}' does not exist or is not served here", param="model")
        return found

    def next_deployment(self, route: ModelRoute, tokens: int = 0) -> Deployment | None:
        """The deployment a new request would try first (for tests and diagnostics)."""
        dep, _, _ = self._pick(route.chain, {}, tokens, self._clock())
        return dep

    # ---------------------------------------------------------------- the loop

    async def run(
        self,
        ctx: RequestContext,
        route: ModelRoute,
        attempt: Callable[[Deployment], Awaitable[T]],
        *,
        tokens: int | None = None,
        hold: bool = False,
    ) -> T:
        """Try deployments, then fallbacks, until one answers; client errors end it at once.

        `tokens` is the prompt's estimate (for tpm and context windows). With `hold`, the serving
        deployment stays busy (in flight, in its capacity window) until `release(ctx, ...)`: streams.
        """
        rc = self.config
        clock = self._clock
        need = tokens or 0
        now = clock()
        deadline = now + route.budget_s
        switched = {route.name}  # models already switched to on a context / content-filter error
        chain = route.chain
        if route.context_fallbacks and need and route.too_small(need):  # never call a model too small for the prompt
            chain = self._targets(route.context_fallbacks, switched)
        tried: dict[Deployment, int] = {}
        failures = 0
        last: GatewayError | None = None
        last_resort = False
        while True:
            dep, model, fresh = self._pick(chain, tried, need, now)
            if dep is None:
                wait = self._soonest(chain, need, now)
                if wait is not None and wait <= min(rc.max_backoff_s, deadline - now):
                    await self._sleep(max(wait, 0.001))
                    now = clock()
                    continue
                if not last_resort and not any(d in tried for m in chain for d in m.deployments):
                    dep, model = self._least_recently_failed(chain, need, now)
                    if dep is not None:
                        last_resort = True
                        ctx.warnings.append(f"every deployment of '{model.name}' is cooling down; tried {dep.name} anyway")
                if dep is None or model is None:
                    raise self._exhausted(last, chain, route, need, now)
            elif not fresh:  # a deployment this request already tried: back off first
                delay = min(rc.max_backoff_s, rc.backoff_s * 2 ** max(failures - 1, 0)) * (0.5 + 0.5 * self._rng.random())
                if now + delay >= deadline:
                    raise last or self._exhausted(last, chain, route, need, now)
                if delay > 0:
                    await self._sleep(delay)
                    now = clock()
                    if not dep.ready(now, need):
                        continue
            if now >= deadline:
                raise last or UpstreamTimeout(f"the request's time budget of {route.budget_s:g} s ran out", code=_BUDGET_CODE)

            # -- one attempt; nothing awaits between the pick above and taking the slot below
            tried[dep] = tried.get(dep, 0) + 1
            health = dep.health
            probe = health.start()
            entry = dep.capacity.take(now, need) if dep.capacity is not None else None
            ctx.deployment, ctx.provider, ctx.served_model = dep.name, dep.provider.name, model.name
            started = now
            remaining = deadline - now
            try:
                if remaining < dep.call.timeout:
                    result = await _bounded(attempt(dep), remaining)
                else:
                    result = await attempt(dep)
            except GatewayError as exc:
                now = clock()
                dep.free(entry, None)
                ctx.attempts.append(_attempt(dep, exc.status, started, now, exc.code))
                if not exc.retryable:
                    health.neutral(probe)
                    targets = self._switch(exc, model, switched)
                    if targets is None:
                        raise
                    chain, last = targets, exc
                    continue
                if exc.code == _BUDGET_CODE:
                    health.neutral(probe)
                else:
                    if isinstance(exc, UpstreamTimeout):
                        health.observe_latency((now - started) * 1000)
                    health.failed(now, exc.code, exc.retry_after, probe)
                failures += 1
                last = exc
                if failures > rc.retries:
                    raise
                continue
            except BaseException as exc:  # cancelled (client gone, shutdown) or a bug: not the deployment's fault
                dep.free(entry, None)
                health.neutral(probe)
                cancelled = isinstance(exc, asyncio.CancelledError)
                ctx.attempts.append(_attempt(dep, 499 if cancelled else 500, started, clock(), "client_closed" if cancelled else "internal_error"))
                raise
            now = clock()
            health.succeeded(now, (now - started) * 1000, probe)
            record = _attempt(dep, 200, started, now, None)
            ctx.attempts.append(record)
            if hold:
                ctx.lease = Lease(dep, entry, record)
            else:
                dep.free(entry, _tokens(getattr(result, "usage", None)))
            return result

    def release(self, ctx: RequestContext, usage: Usage | None = None, status: int = 200, error: str | None = None) -> None:
        """A held stream ended: free its deployment, settle its tokens, count a mid-stream fault."""
        lease = ctx.lease
        if lease is None:
            return
        ctx.lease = None
        dep = lease.dep
        dep.free(lease.entry, _tokens(usage))
        if status in _STREAM_FAULTS:  # the upstream broke the stream after it was handed on
            lease.attempt.status, lease.attempt.error = status, error
            dep.health.failed(self._clock(), error)
        elif status == 499:  # the client left: say so, but it is not the deployment's fault
            lease.attempt.status, lease.attempt.error = status, error

    # ---------------------------------------------------------------- choosing

    def _pick(
        self, chain: list[ModelRoute], tried: dict[Deployment, int], need: int, now: float
    ) -> tuple[Deployment | None, ModelRoute | None, bool]:
        """A deployment not yet tried, model by model along the chain; else one already tried."""
        for model in chain:
            if need and model.too_small(need):
                continue
            deps = model.deployments
            if len(deps) == 1:  # the common case, without building a list
                d = deps[0]
                if d not in tried and d.ready(now, need):
                    return d, model, True
                continue
            fresh = [d for d in deps if d not in tried and d.ready(now, need)]
            if fresh:
                return model.choose(fresh, self._rng), model, True
        if tried:
            for model in chain:
                if need and model.too_small(need):
                    continue
                again = [d for d in model.deployments if d.ready(now, need)]
                if again:
                    return model.choose(again, self._rng), model, False
        return None, None, False

    def _soonest(self, chain: list[ModelRoute], need: int, now: float) -> float | None:
        """Seconds until a deployment held back only by Retry-After or its capacity may be called."""
        best: float | None = None
        for model in chain:
            if need and model.too_small(need):
                continue
            for d in model.deployments:
                h = d.health
                if now < h.cooldown_until or (h.half_open and h.probing):
                    continue
                wait = max(0.0, h.not_before - now)
                if d.capacity is not None:
                    cap = d.capacity.ready_in(now, need)
                    if cap is None:
                        continue
                    wait = max(wait, cap)
                if best is None or wait < best:
                    best = wait
        return best

    def _least_recently_failed(self, chain: list[ModelRoute], need: int, now: float) -> tuple[Deployment | None, ModelRoute | None]:
        """Among deployments kept away only by their health, the one whose last failure is oldest."""
        best: tuple[Deployment, ModelRoute] | None = None
        for model in chain:
            if need and model.too_small(need):
                continue
            for d in model.deployments:
                if d.health.cooling(now) and (d.capacity is None or d.capacity.headroom(now, need)):
                    if best is None or d.health.last_failure < best[0].health.last_failure:
                        best = (d, model)
        return best if best is not None else (None, None)

    def _targets(self, names: list[str], switched: set[str]) -> list[ModelRoute]:
        targets = [self.routes[n] for n in names if n in self.routes and n not in switched]
        switched.update(names)
        return targets

    def _switch(self, exc: GatewayError, model: ModelRoute, switched: set[str]) -> list[ModelRoute] | None:
        """The chain to continue on after a client error that a bigger or other model may cure."""
        if isinstance(exc, ContextLengthExceeded):
            names = model.context_fallbacks
        elif isinstance(exc, ContentFiltered):
            names = model.content_filter_fallbacks
        else:
            return None
        targets = self._targets(names, switched)
        return targets or None

    def _exhausted(self, last: GatewayError | None, chain: list[ModelRoute], route: ModelRoute, need: int, now: float) -> GatewayError:
        """The error when nothing more may be tried: the last failure, else why nothing was tried."""
        if last is not None:
            return last
        usable = [m for m in chain if not (need and m.too_small(need))]
        if not usable:
            window = route.info.context_window
            return ContextLengthExceeded(
                f"the prompt is about {need} tokens, more than the {window}-token context window of '{route.name}' and of its context fallbacks",
                param="messages",
            )
        deps = [d for m in usable for d in m.deployments]
        throttled = [d.health.not_before - now for d in deps if d.health.not_before > now]
        if throttled:
            return UpstreamRateLimited(
                f"every deployment of '{route.name}' asked lmgate to wait (Retry-After)", retry_after=min(throttled)
            )
        full = [d for d in deps if d.capacity is not None and not d.capacity.headroom(now, need)]
        if full:
            waits = [w for w in (d.capacity.ready_in(now, need) for d in full) if w is not None]  # type: ignore[union-attr]
            return UpstreamRateLimited(
                f"every deployment of '{route.name}' is at its rpm/tpm capacity",
                code="capacity_exhausted",
                retry_after=min(waits) if waits else 1.0,
            )
        cooling = [d.health.cooldown_until - now for d in deps if d.health.cooldown_until > now]
        return UpstreamUnavailable(f"no deployment of '{route.name}' is available", retry_after=min(cooling) if cooling else None)

    # ---------------------------------------------------------------- admin

    def snapshot(self) -> dict[str, Any]:
        """Every model's deployments and their live state, for GET /admin/health."""
        now = self._clock()
        models = []
        for r in self.routes.values():
            deps = []
            for d in r.deployments:
                h = d.health
                horizon = now - h.cooldown_s
                item: dict[str, Any] = {
                    "name": d.name,
                    "provider": d.provider.name,
                    "model": d.upstream_model,
                    "state": h.state(now),
                    "weight": d.weight,
                    "in_flight": h.in_flight,
                    "recent_failures": sum(1 for t in h.fails if t >= horizon),
                    "successes": h.successes,
                    "failures": h.failures,
                    "cooldown_remaining_s": round(max(0.0, h.cooldown_until - now), 3),
                    "retry_after_s": round(max(0.0, h.not_before - now), 3),
                    "latency_ms": None if h.latency_ms is None else round(h.latency_ms, 2),
                    "last_error": h.last_error,
                    "last_failure_s_ago": round(now - h.last_failure, 3) if h.failures else None,
                }
                if d.capacity is not None:
                    reqs, toks = d.capacity.used(now)
                    item["rpm"] = {"limit": d.rpm, "used": reqs}
                    item["tpm"] = {"limit": d.tpm, "used": toks}
                deps.append(item)
            models.append(
                {
                    "name": r.name,
                    "strategy": r.strategy,
                    "fallbacks": r.fallbacks,
                    "context_fallbacks": r.context_fallbacks,
                    "content_filter_fallbacks": r.content_filter_fallbacks,
                    "deployments": deps,
                }
            )
        return {"models": models}


async def _bounded(aw: Awaitable[T], remaining: float) -> T:
    """An attempt cut to what is left of the request's time budget."""
    try:
        async with asyncio.timeout(max(remaining, 0.001)):
            return await aw
    except TimeoutError:
        raise UpstreamTimeout("the request's time budget ran out before the upstream answered", code=_BUDGET_CODE) from None


def _attempt(dep: Deployment, status: int, started: float, ended: float, error: str | None) -> Attempt:
    return Attempt(dep.name, dep.provider.name, dep.upstream_model, status, round((ended - started) * 1000, 2), error)


def _tokens(usage: Usage | None) -> int | None:
    if usage is None:
        return None
    total = usage.input_tokens + usage.output_tokens
    return total or None


def unit_cost(catalog: Catalog | None, upstream_model: str) -> float:
    """The upstream model's list price as USD per 1M input + 1M output tokens (inf when unknown)."""
    info = catalog.get(upstream_model) if catalog is not None else None
    if info is None:
        return math.inf
    p = info.price
    scale = {"1M tokens": 1.0, "1K tokens": 1e3, "1K characters": 1e3 * CHARS_PER_TOKEN}.get(p.unit, 1.0)
    return (p.input + p.output) * scale


def build_routes(
    config: Config,
    providers: dict[str, Provider],
    info_for: Callable[[ModelConfig], ModelInfo],
    catalog: Catalog | None = None,
) -> dict[str, ModelRoute]:
    rc = config.router
    routes: dict[str, ModelRoute] = {}
    for m in config.models:
        deps = []
        seen: dict[str, int] = {}
        info = info_for(m)
        for d in m.deployments:
            p = providers[d.provider]
            pc = p.config
            call = Call(
                model=d.model,
                timeout=d.timeout or pc.timeout or rc.timeout,
                connect_timeout=d.connect_timeout or pc.connect_timeout or rc.connect_timeout,
                idle_timeout=rc.stream_idle_timeout,
                merge_roles=d.merge_roles,
                max_output_tokens=info.max_output_tokens,
            )
            name = d.name or f"{d.provider}/{d.model}"
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:  # two entries for the same provider and model: tell them apart
                name = f"{name}#{seen[name]}"
            deps.append(
                Deployment(
                    name,
                    m.name,
                    p,
                    d.model,
                    d.weight,
                    d.rpm,
                    d.tpm,
                    call,
                    Health(rc.allowed_fails, rc.cooldown_s),
                    Window(d.rpm, d.tpm) if d.rpm or d.tpm else None,
                    unit_cost(catalog, d.model),
                )
            )
        routes[m.name] = ModelRoute(
            m.name,
            info,
            deps,
            list(m.fallbacks),
            list(m.context_fallbacks),
            list(m.content_filter_fallbacks),
            m.strategy,
            m.cache,
            budget_s=max([rc.timeout, *(d.call.timeout for d in deps)]),
        )
    return routes
