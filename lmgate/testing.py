"""Run a gateway on a loopback port inside the test process (its own thread and event loop)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn

from lmgate.app import Gateway
from lmgate.config import Config, parse_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningGateway:
    app: Gateway
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_gateway(config: str | Config, env: dict[str, str] | None = None, **gateway_args: Any) -> RunningGateway:
    """Build a Gateway from YAML text (or a Config) and serve it until `stop()`."""
    cfg = parse_config(config, env=env) if isinstance(config, str) else config
    app = Gateway(cfg, **gateway_args)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, loop="asyncio", http="httptools", log_level="warning", lifespan="on", access_log=False)
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test gateway did not start")
        time.sleep(0.01)
    return RunningGateway(app, port, server, thread)
