"""A tiny OpenAI-shaped upstream for what the simulator does not report: a slow stream that records
the moment its client (the gateway) drops the connection."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web

@dataclass
class SlowStreams:
    started: int = 0
    frames_sent: int = 0
    dropped_at: list[float] = field(default_factory=list)
    finished: int = 0


def _chunk(i: int, model: str) -> bytes:
    delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f"w{i} "}
    body = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def build(slow: SlowStreams) -> web.Application:
    async def slow_stream(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        slow.started += 1
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(400):  # 400 x 50 ms = 20 s if nobody hangs up
                await resp.write(_chunk(i, body.get("model", "")))
                slow.frames_sent += 1
                await asyncio.sleep(0.05)
            await resp.write(b"data: [DONE]\n\n")
            slow.finished += 1
        except (ConnectionError, asyncio.CancelledError):
            slow.dropped_at.append(time.monotonic())
            raise
        return resp

    app = web.Application()
    app.router.add_post("/slow/v1/chat/completions", slow_stream)
    return app


class Upstream:
    """Serve the app on a loopback port from its own thread."""

    def __init__(self) -> None:
        self.slow = SlowStreams()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        async def start() -> None:
            runner = web.AppRunner(build(self.slow), handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.runner = runner

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        async def cleanup() -> None:
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
