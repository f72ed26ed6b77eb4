"""The simulator application: every provider's routes, the request log, and ways to run it.

Each protocol module exposes a `ROUTES` table; this module joins them, and registers every
route a second time under `/_sim/{knobs}/` so a deployment's base_url can carry knobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from lmgate.simulator import anthropic, azure, bedrock, cohere, gemini, openai_extra, vertex
from lmgate.simulator.common import PREFIX_KEY, json_response
from lmgate.simulator.state import JSON_KEY, LOG_KEY, STATE_KEY, SimState, SimulatorConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SIM_PATHS = ("/_sim/requests", "/_sim/reset", "/_sim/images/", "/_sim/health")
_MAX_BODY = 64 * 1024 * 1024


def _protocol_routes() -> list[tuple[str, str, Handler]]:
    return [
        *openai_extra.ROUTES,
        *azure.ROUTES,
        *anthropic.ROUTES,
        *gemini.ROUTES,
        *vertex.ROUTES,
        *bedrock.ROUTES,
        *cohere.ROUTES,
    ]


@web.middleware
async def _log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every request (method, path, query, headers, parsed body) in the bounded log."""
    if request.path == "/" or request.path.startswith(_SIM_PATHS):
        return await handler(request)
    state = request.app[STATE_KEY]
    entry: dict[str, Any] = {
        "time": time.time(),
        "method": request.method,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0],
        "query": dict(request.query),
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": None,
    }
    if request.can_read_body and not request.content_type.startswith("multipart/"):
        raw = await request.read()
        parsed: Any
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            parsed = ValueError(f"invalid JSON: {exc}")
        request[JSON_KEY] = parsed
        if len(raw) > state.config.log_body_limit:
            entry["body"] = {"size": len(raw), "truncated": True}
        elif isinstance(parsed, ValueError):
            entry["body"] = {"raw": raw.decode("utf-8", "replace")}
        else:
            entry["body"] = parsed
    state.log.append(entry)
    request[LOG_KEY] = entry
    return await handler(request)


async def _get_requests(request: web.Request) -> web.Response:
    """GET /_sim/requests: the request log, newest last."""
    return json_response(list(request.app[STATE_KEY].log))


async def _delete_requests(request: web.Request) -> web.Response:
    request.app[STATE_KEY].log.clear()
    return json_response({"cleared": True})


async def _health(request: web.Request) -> web.Response:
    """GET / and GET /_sim/health: the simulator is up."""
    return json_response({"simulator": "lmgate", "status": "ok"})


async def _reset(request: web.Request) -> web.Response:
    """POST /_sim/reset: forget fail_first counters."""
    request.app[STATE_KEY].counters.clear()
    return json_response({"reset": True})


async def _on_shutdown(app: web.Application) -> None:
    state = app[STATE_KEY]
    if state.closing is not None:
        state.closing.set()


def build_app(config: SimulatorConfig | None = None) -> web.Application:
    """The aiohttp application speaking every provider's wire protocol."""
    app = web.Application(middlewares=[_log_requests], client_max_size=_MAX_BODY)
    app[STATE_KEY] = SimState(config or SimulatorConfig())
    app.on_shutdown.append(_on_shutdown)
    router = app.router
    router.add_get("/", _health)
    router.add_get("/_sim/health", _health)
    router.add_get("/_sim/requests", _get_requests)
    router.add_delete("/_sim/requests", _delete_requests)
    router.add_post("/_sim/reset", _reset)
    router.add_get("/_sim/images/{name}.png", openai_extra.image_file)
    routes = _protocol_routes()
    for method, path, handler in routes:
        router.add_route(method, path, handler)
    for method, path, handler in routes:
        router.add_route(method, "/_sim/{" + PREFIX_KEY + "}" + path, handler)
    return app


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop


def run(host: str = "127.0.0.1", port: int = 8101, config: SimulatorConfig | None = None) -> None:
    """Serve the simulator until interrupted (the `lmgate simulate` command)."""
    loop = _loop_factory()()
    asyncio.set_event_loop(loop)
    web.run_app(build_app(config), host=host, port=port, loop=loop, access_log=None,
                shutdown_timeout=1.0, handler_cancellation=True,
                print=lambda *_: print(f"lmgate simulator on http://{host}:{port}", flush=True))


class Simulator:
    """Run a simulator on a loopback port inside the current event loop (async tests).

    `async with Simulator() as sim:` gives `sim.base_url` and `sim.state`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 config: SimulatorConfig | None = None) -> None:
        self.host, self.port = host, port
        self.app = build_app(config)
        self.state = self.app[STATE_KEY]
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> "Simulator":
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5,
                                     handler_cancellation=True)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "Simulator":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def start_in_thread(port: int = 0, host: str = "127.0.0.1",
                    config: SimulatorConfig | None = None
                    ) -> tuple[str, Callable[[], None], SimState]:
    """Run a simulator on its own thread and loop; returns (base_url, stop, state)."""
    loop = _loop_factory()()
    sim = Simulator(host, port, config)
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(sim.start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(sim.stop())
        leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftovers:  # delayed or stalled answers still sleeping
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=serve, name="lmgate-simulator", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise failure[0]

    def stop() -> None:
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        with contextlib.suppress(RuntimeError):
            thread.join(timeout=10)

    return sim.base_url, stop, sim.state
