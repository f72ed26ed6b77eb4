"""The gateway assembled: config -> catalog, providers, router, policy steps, ledger, surfaces.

This is the one module that imports across every layer; the ASGI callable is `Gateway`.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from lmgate.catalog.catalog import Catalog, ModelInfo
from lmgate.config import Config, ModelConfig
from lmgate.errors import ConfigError, GatewayError, InternalError, MethodNotAllowed, NotFound
from lmgate.http.asgi import ClientDisconnected, Request, Response, Route, Router as UrlRouter, StreamingResponse, json_response
from lmgate.pipeline import Pipeline
from lmgate.policy.accounting import LedgerSink, MemoryLedger
from lmgate.policy.auth import KeyIndex, records_from_config
from lmgate.policy.cache import CacheStep
from lmgate.policy.guardrails.step import GuardrailStep
from lmgate.policy.limits import LimitsStep
from lmgate.policy.step import Step
from lmgate.providers.base import Provider
from lmgate.providers.http import HttpPool
from lmgate.providers.media import MediaService, media_policy
from lmgate.providers.registry import PROVIDERS
from lmgate.routing.router import Router, build_routes
from lmgate.surfaces import admin_health
from lmgate.surfaces import anthropic as anthropic_surface
from lmgate.surfaces import azure as azure_surface
from lmgate.surfaces import bedrock as bedrock_surface
from lmgate.surfaces import gemini as gemini_surface
from lmgate.surfaces import openai as openai_surface
from lmgate.surfaces.base import Services

log = logging.getLogger("lmgate")

# Inbound surfaces, in the order their routes are matched. One line per surface.
SURFACES = [openai_surface, bedrock_surface, anthropic_surface, azure_surface, gemini_surface]

# Every route also answers under this prefix (004's base URL), repeated or with doubled slashes.
PROXY_PREFIX = "/proxy/api/v1"
_SLASHES = re.compile(r"/{2,}")


@dataclass
class Lifecycle:
    """Things started with the server and stopped with it, in reverse order."""

    starts: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    stops: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


class Gateway:
    """The ASGI application."""

    def __init__(self, config: Config, *, ledger: LedgerSink | None = None, steps: list[Step] | None = None) -> None:
        self.config = config
        self.catalog = build_catalog(config)
        self.http = HttpPool()
        self.providers = build_providers(config, self.http)
        self.router = Router(config.router, build_routes(config, self.providers, lambda m: model_info(self.catalog, m), self.catalog))
        self.keys = KeyIndex(records_from_config(config.keys))
        self.ledger: LedgerSink = ledger if ledger is not None else MemoryLedger()
        self.steps: list[Step] = list(steps) if steps is not None else build_steps(self)
        self.media = MediaService(media_policy(config.media))
        self.pipeline = Pipeline(self.router, self.steps, self.ledger, media=self.media)
        self.services = Services(self.pipeline, self.keys, self.router, config.server)
        self.lifecycle = Lifecycle(stops=[self.http.close, self.media.close, *(p.close for p in self.providers.values())])
        self.ready = False
        routes: list[Route] = [
            Route("GET", "/health", self._health, "openai"),
            Route("GET", "/health/ready", self._ready, "openai"),
            *admin_health.routes(self.router, config.master_key),
        ]
        self.error_renderers: dict[str, Callable[[GatewayError, str], Response]] = {}
        self.path_hints: list[tuple[str, str]] = []
        for surface in SURFACES:
            routes.extend(surface.routes(self.services))
            self.error_renderers[surface.NAME] = surface.render_error
            self.path_hints.extend((hint, surface.NAME) for hint in getattr(surface, "PATH_HINTS", ()))
        self._all_routes = routes
        self.urls = UrlRouter(routes)

    def add_routes(self, routes: list[Route], name: str | None = None, render_error: Callable[[GatewayError, str], Response] | None = None) -> None:
        """For parts assembled after the surfaces (admin API)."""
        if name and render_error:
            self.error_renderers[name] = render_error
        self._all_routes = self._all_routes + routes
        self.urls = UrlRouter(self._all_routes)

    # ---------------------------------------------------------------- ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        if "//" in path:
            path = _SLASHES.sub("/", path)
        while path.startswith(PROXY_PREFIX) and (len(path) == len(PROXY_PREFIX) or path[len(PROXY_PREFIX)] == "/"):
            path = path[len(PROXY_PREFIX) :] or "/"
        request = Request(scope, receive, path)
        request.request_id = new_request_id()
        found = self.urls.match(path)
        surface = "openai"
        try:
            if found is None:
                surface = self._surface_for(path)
                raise NotFound(f"no route {request.method} {path}", code="route_not_found")
            methods, params = found
            route = methods.get(request.method)
            if route is None:
                surface = next(iter(methods.values())).name
                raise MethodNotAllowed(f"{request.method} is not allowed on {path}", headers={"allow": ", ".join(sorted(methods))})
            surface = route.name
            request.path_params = params
            response = await route.handler(request)
        except GatewayError as exc:
            response = self.error_renderers.get(surface, openai_surface.render_error)(exc, request.request_id)
        except ClientDisconnected:
            return
        except Exception:
            log.exception("unhandled error on %s %s (request %s)", request.method, path, request.request_id)
            response = self.error_renderers.get(surface, openai_surface.render_error)(
                InternalError("lmgate failed to handle the request"), request.request_id
            )
        try:
            if isinstance(response, StreamingResponse):
                await response.send(send, receive)  # a disconnect cancels the stream and its upstream call
            else:
                await response.send(send)
        except ClientDisconnected:
            pass

    def _surface_for(self, path: str) -> str:
        for hint, name in self.path_hints:
            if hint in path:
                return name
        return "openai"

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                settle_heap()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        for start in self.lifecycle.starts:
            await start()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for stop in reversed(self.lifecycle.stops):
            try:
                await stop()
            except Exception:
                log.exception("shutdown step failed")

    async def _health(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def _ready(self, request: Request) -> Response:
        if not self.ready:
            return json_response({"status": "starting"}, status=503)
        return json_response({"status": "ready", "models": len(self.router.routes), "keys": len(self.keys)})


# ---------------------------------------------------------------- assembly


def build_steps(gw: Gateway) -> list[Step]:
    """The policy steps, in the order they run before the call (after it, in reverse).

    Limits first (refuse before doing any work), then input guardrails (so the cache key is taken
    on what would really be sent), then the cache. One line per step.
    """
    steps: list[Step] = []
    steps.append(LimitsStep(routes=gw.router.routes))
    steps.append(GuardrailStep.from_gateway(gw))
    steps.append(CacheStep.from_gateway(gw))
    return steps


def build_catalog(config: Config) -> Catalog:
    """The built-in catalog with the config's models laid over it.

    A configured name the catalog does not know starts from its first deployment's upstream
    model where the catalog knows that one (so `name: fast` over `gpt-4o-mini` inherits prices).
    """
    builtin = Catalog.builtin()
    overrides: dict[str, dict[str, Any]] = {}
    for m in config.models:
        entry: dict[str, Any] = {}
        if builtin.get(m.name) is None:
            base = next((d.model for d in m.deployments if builtin.get(d.model) is not None), None)
            if base is not None:
                entry["base"] = base
        if m.pricing is not None:
            entry["pricing"] = m.pricing.model_dump(exclude_none=True)
        for name in ("context_window", "max_output_tokens", "modalities", "status", "kind"):
            value = getattr(m, name)
            if value is not None:
                entry[name] = value
        if entry:
            overrides[m.name] = entry
    return builtin.with_overrides(overrides)


def model_info(catalog: Catalog, m: ModelConfig) -> ModelInfo:
    """The catalog entry for a configured model; an unknown one accepts every input and costs 0."""
    info = catalog.get(m.name)
    if info is None:
        log.warning("model %r is not in the catalog and has no pricing: its cost is counted as 0", m.name)
        info = ModelInfo(name=m.name, context_window=0, modalities=frozenset({"text", "image", "document", "audio", "video"}))
    return info


def build_providers(config: Config, http: HttpPool) -> dict[str, Provider]:
    out: dict[str, Provider] = {}
    for name, pc in config.providers.items():
        cls = PROVIDERS.get(pc.type)
        if cls is None:
            raise ConfigError(f"provider {name!r}: type {pc.type!r} is not available")
        out[name] = cls(name, pc, http)
    return out


def create_app(config_path: str | None = None) -> Gateway:
    """The server's factory: the config named by the argument or $LMGATE_CONFIG."""
    from lmgate.config import load_config

    path = config_path or os.environ.get("LMGATE_CONFIG")
    if not path:
        raise ConfigError("no config: pass --config or set LMGATE_CONFIG")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return gateway_with_store(load_config(path))


def gateway_with_store(config: Config) -> Gateway:
    """The serving gateway: keys, ledger and spend in `config.database`, and the admin API."""
    from lmgate.store.runtime import StoreRuntime
    from lmgate.surfaces import admin

    runtime = StoreRuntime(config)
    gw = Gateway(config, ledger=runtime.ledger)
    service = runtime.attach(gw.keys, gw.steps, gw.lifecycle)
    gw.add_routes(admin.routes(service, config.master_key), admin.NAME, admin.render_error)
    return gw


def new_request_id() -> str:
    """`req_` + the time in microseconds (13 hex digits) + 48 random bits. Ids that grow with time
    are appended at the end of the ledger's primary-key index instead of landing at random pages,
    which makes each insert about 40% cheaper; the random part keeps them unguessable and unique."""
    return f"req_{time.time_ns() // 1000:013x}{os.urandom(6).hex()}"


def settle_heap() -> None:
    """Once started: move every object loaded so far (the libraries, the config, the catalog, some
    hundred thousand objects) out of the collector's sight. Otherwise each full collection walks
    them all again, and the allocations of a few hundred requests trigger one."""
    gc.collect()
    gc.freeze()

