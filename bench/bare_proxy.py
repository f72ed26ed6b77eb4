"""The Python floor: a bare pass-through proxy (raw ASGI, uvicorn+httptools+uvloop, aiohttp client).

No parsing, no auth, no accounting: it forwards method, path, query and body to one upstream and
relays the answer; event streams are relayed chunk by chunk as they arrive. A gateway written in
Python cannot be faster than this on the same machine, so the benchmark divides by its numbers.

    python bench/bare_proxy.py --upstream http://127.0.0.1:8081 --port 8090 [--workers 2]
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Awaitable, Callable

import aiohttp
import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

FORWARDED_REQUEST_HEADERS = (b"content-type", b"authorization", b"accept")


class BareProxy:
    """ASGI app holding one pooled keep-alive aiohttp session for the process."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.proxy(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Open the pooled session at startup and close it at shutdown."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None)
                self.session = aiohttp.ClientSession(
                    connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one request untouched and relay the answer."""
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in FORWARDED_REQUEST_HEADERS
        }
        url = self.upstream + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        assert self.session is not None
        async with self.session.request(scope["method"], url, data=body, headers=headers) as resp:
            content_type = resp.headers.get("Content-Type", "application/json")
            if content_type.startswith("text/event-stream"):
                await send(
                    {
                        "type": "http.response.start",
                        "status": resp.status,
                        "headers": [(b"content-type", content_type.encode("latin-1"))],
                    }
                )
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            payload = await resp.read()
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(payload)).encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def app_from_env() -> BareProxy:
    """The app of each worker process when several run (uvicorn imports it by name)."""
    return BareProxy(os.environ["BARE_PROXY_UPSTREAM"])


def main() -> None:
    """Parse the command line and serve until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8081")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (the ceiling a second worker can reach here)")
    args = parser.parse_args()
    common: dict[str, Any] = dict(
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
    )
    if args.workers > 1:
        os.environ["BARE_PROXY_UPSTREAM"] = args.upstream
        here = os.path.dirname(os.path.abspath(__file__))
        uvicorn.run("bare_proxy:app_from_env", factory=True, workers=args.workers, app_dir=here, **common)
    else:
        uvicorn.run(BareProxy(args.upstream), **common)


if __name__ == "__main__":
    main()
