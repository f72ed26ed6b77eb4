"""The simulator's configuration and the little state it keeps between requests."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


AWS_ACCESS_KEY_ID = "AKIDSIMULATOR"
AWS_SECRET_ACCESS_KEY = "simulator-secret"


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Settings of one simulator instance."""

    aws_access_key_id: str = AWS_ACCESS_KEY_ID  # the only key SigV4 requests may be signed with
    aws_secret_access_key: str = AWS_SECRET_ACCESS_KEY
    aws_max_skew_s: int = 900  # AWS refuses signatures older or newer than 15 minutes
    log_size: int = 1000  # requests kept in the request log
    log_body_limit: int = 2_000_000  # bodies larger than this are logged as a summary
    vertex_token_ttl_s: int = 3600


@dataclass(slots=True)
class SimState:
    """Per-app mutable state: request log, fail_first counters, issued OAuth tokens."""

    config: SimulatorConfig
    log: deque[dict[str, Any]] = field(default_factory=deque)
    counters: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # access token -> expiry (epoch s)
    closing: asyncio.Event | None = None

    def __post_init__(self) -> None:
        self.log = deque(maxlen=self.config.log_size)

    def issue_token(self, token: str) -> int:
        ttl = self.config.vertex_token_ttl_s
        self.tokens[token] = time.time() + ttl
        return ttl

    def token_valid(self, token: str) -> bool:
        expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.time()

    async def forever(self) -> None:
        """Block until the app shuts down: a stalled stream or answer."""
        if self.closing is None:
            self.closing = asyncio.Event()
        await self.closing.wait()
        raise asyncio.CancelledError


STATE_KEY = web.AppKey("lmgate_sim_state", SimState)
# per-request storage: the parsed JSON body (or the ValueError parsing raised), the log entry
_RequestKey = getattr(web, "RequestKey", None)
JSON_KEY: Any = _RequestKey("lmgate_sim_json", object) if _RequestKey else "lmgate_sim_json"
LOG_KEY: Any = _RequestKey("lmgate_sim_log", dict) if _RequestKey else "lmgate_sim_log"
