"""Routers built by hand for unit tests: fake clock and sleep, seeded randomness, scripted deployments."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

from lmgate.catalog.catalog import ModelInfo
from lmgate.config import RouterConfig
from lmgate.providers.base import Call
from lmgate.routing.capacity import Window
from lmgate.routing.health import Health
from lmgate.routing.router import Deployment, ModelRoute, Router
from lmgate.types import RequestContext


@dataclass
class FakeClock:
    """Monotonic time that only moves when the router sleeps or a test advances it."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def dep(name: str, model: str = "m", *, weight: float = 1.0, rpm: int | None = None, tpm: int | None = None,
        timeout: float = 30.0, cost: float = float("inf"), rc: RouterConfig | None = None) -> Deployment:
    rc = rc or RouterConfig()
    call = Call(model=name, timeout=timeout, connect_timeout=1.0, idle_timeout=rc.stream_idle_timeout)
    provider: Any = SimpleNamespace(name=name.split("/")[0])
    return Deployment(name, model, provider, name, weight, rpm, tpm, call, Health(rc.allowed_fails, rc.cooldown_s),
                      Window(rpm, tpm) if rpm or tpm else None, cost)


def route(name: str, deps: list[Deployment], *, window: int = 100_000, strategy: str = "weighted", **kw: Any) -> ModelRoute:
    return ModelRoute(name, ModelInfo(name=name, context_window=window), deps, strategy=strategy,
                      budget_s=max([30.0, *(d.call.timeout for d in deps)]), **kw)


def make_router(routes: list[ModelRoute], rc: RouterConfig | None = None, clock: FakeClock | None = None,
                seed: int = 7) -> tuple[Router, FakeClock]:
    clock = clock or FakeClock()
    r = Router(rc or RouterConfig(backoff_s=0.05), {m.name: m for m in routes}, clock=clock, rng=random.Random(seed), sleep=clock.sleep)
    return r, clock


def ctx() -> RequestContext:
    return RequestContext("req_test", "openai", "chat", time.monotonic(), time.time())


class Script:
    """An attempt function: what each deployment does, by name (an exception, a value, or a callable)."""

    def __init__(self, **behaviour: Any) -> None:
        self.behaviour = {k.replace("__", "/"): v for k, v in behaviour.items()}
        self.calls: list[str] = []

    def set(self, name: str, value: Any) -> None:
        self.behaviour[name] = value

    async def __call__(self, d: Deployment) -> Any:
        self.calls.append(d.name)
        what = self.behaviour.get(d.name, "ok")
        if isinstance(what, Callable):  # type: ignore[arg-type]
            what = what()
        if isinstance(what, BaseException):
            raise what
        return what
