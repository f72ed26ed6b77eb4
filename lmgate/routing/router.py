"""Model name -> ordered deployments, and the one retry/fallback loop every endpoint goes through."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

from lmgate.catalog.catalog import ModelInfo
from lmgate.config import Config, ModelConfig, RouterConfig
from lmgate.errors import GatewayError, ModelNotFound, UpstreamUnavailable
from lmgate.providers.base import Call, Provider
from lmgate.types import Attempt, RequestContext

T = TypeVar("T")


@dataclass(slots=True)
class Deployment:
    """One place a model is served, resolved at start (provider object, timeouts, catalog entry)."""

    name: str
    model_name: str  # the client-facing model
    provider: Provider
    upstream_model: str
    weight: float
    rpm: int | None
    tpm: int | None
    call: Call  # timeouts and options, shared by every call to this deployment


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


class Router:
    def __init__(self, config: RouterConfig, routes: dict[str, ModelRoute]) -> None:
        self.config = config
        self.routes = routes

    def route(self, model: str) -> ModelRoute:
        found = self.routes.get(model)
        if found is None:
            raise ModelNotFound(f"the model '{model}' does not exist or is not served here", param="model")
        return found

    def order(self, route: ModelRoute) -> list[Deployment]:
        """Deployments in the order to try them: a weighted draw first, the rest after."""
        deps = route.deployments
        if len(deps) == 1:
            return deps
        remaining = list(deps)
        ordered = []
        while remaining:
            total = sum(d.weight for d in remaining)
            pick = random.random() * total
            for i, d in enumerate(remaining):
                pick -= d.weight
                if pick <= 0 or i == len(remaining) - 1:
                    ordered.append(remaining.pop(i))
                    break
        return ordered

    async def run(self, ctx: RequestContext, route: ModelRoute, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        """Try deployments, then fallbacks, until one answers; client errors end it at once."""
        budget = 1 + self.config.retries
        last: GatewayError | None = None
        delay = self.config.backoff_s
        for model in [route, *(self.routes[n] for n in route.fallbacks if n in self.routes)]:
            for dep in self.order(model):
                if budget <= 0:
                    break
                if last is not None and delay:
                    await asyncio.sleep(min(delay * (0.5 + random.random()), self.config.max_backoff_s))
                    delay *= 2
                budget -= 1
                started = time.monotonic()
                ctx.deployment, ctx.provider, ctx.served_model = dep.name, dep.provider.name, model.name
                try:
                    result = await attempt(dep)
                except GatewayError as exc:
                    ctx.attempts.append(_attempt(dep, exc.status, started, exc.code))
                    if not exc.retryable:
                        raise
                    last = exc
                    continue
                ctx.attempts.append(_attempt(dep, 200, started, None))
                return result
        raise last or UpstreamUnavailable(f"no deployment of '{route.name}' is available")


def _attempt(dep: Deployment, status: int, started: float, error: str | None) -> Attempt:
    return Attempt(dep.name, dep.provider.name, dep.upstream_model, status, round((time.monotonic() - started) * 1000, 2), error)


def build_routes(config: Config, providers: dict[str, Provider], info_for: Callable[[ModelConfig], ModelInfo]) -> dict[str, ModelRoute]:
    rc = config.router
    routes: dict[str, ModelRoute] = {}
    for m in config.models:
        deps = []
        for d in m.deployments:
            p = providers[d.provider]
            pc = p.config
            call = Call(
                model=d.model,
                timeout=d.timeout or pc.timeout or rc.timeout,
                connect_timeout=d.connect_timeout or pc.connect_timeout or rc.connect_timeout,
                idle_timeout=rc.stream_idle_timeout,
                merge_roles=d.merge_roles,
            )
            deps.append(Deployment(d.name or f"{d.provider}/{d.model}", m.name, p, d.model, d.weight, d.rpm, d.tpm, call))
        routes[m.name] = ModelRoute(
            m.name, info_for(m), deps, list(m.fallbacks), list(m.context_fallbacks), list(m.content_filter_fallbacks), m.strategy, m.cache
        )
    return routes
