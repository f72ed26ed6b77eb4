"""A gateway whose every deployment is one in-process fake provider, for pipeline-level tests of
the cache and guardrail steps (counting upstream calls exactly, failing or cutting on demand)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, AsyncIterator

from lmgate.app import Gateway
from lmgate.config import ProviderConfig, parse_config
from lmgate.errors import GatewayError, StreamInterrupted
from lmgate.policy.accounting import MemoryLedger
from lmgate.providers.base import Call, Provider
from lmgate.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    Options,
    RawChunk,
    RequestContext,
    StreamEvent,
    StreamFinish,
    StreamStart,
    StreamUsage,
    TextDelta,
    TextPart,
    Usage,
)

_IDS = itertools.count()

BASE = """
providers:
  p: {type: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  - {name: m, deployments: [{provider: p, model: m-up}], pricing: {input: 1, output: 2, unit: 1M tokens}}
  - {name: other, deployments: [{provider: p, model: other-up}]}
  - {name: nocache, cache: false, deployments: [{provider: p, model: nocache-up}]}
  - {name: img, kind: image, deployments: [{provider: p, model: img-up}]}
  - {name: judge, deployments: [{provider: p, model: judge-up}]}
  - {name: emb, kind: embedding, deployments: [{provider: p, model: emb-up}], pricing: {input: 1, unit: 1M tokens}}
router: {retries: 0, backoff_s: 0}
"""


class FakeProvider(Provider):
    """Answers `answer to: <last user text>` (or `text`), after `delay` seconds."""

    type = "fake"

    def __init__(self, http: Any) -> None:
        super().__init__("fake", ProviderConfig(type="openai"), http)
        self.calls = 0
        self.delay = 0.0
        self.text: str | None = None
        self.judge_says = "ALLOW"
        self.fail: GatewayError | None = None
        self.fail_times = 0  # fail only this many calls (0: every call while `fail` is set)
        self.cut_after: int | None = None
        self.finish = "stop"
        self.raw = False  # stream same-format RawChunks, as the openai provider does
        self.vectors: dict[str, list[float]] = {}
        self.chunk = 7

    def _reply(self, req: ChatRequest, call: Call) -> str:
        if call.model == "judge-up":
            return self.judge_says
        if self.text is not None:
            return self.text
        return "answer to: " + req.messages[-1].text()

    async def _start(self) -> None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            if self.fail_times == 0 or self.calls <= self.fail_times:
                raise self.fail

    async def chat(self, req: ChatRequest, call: Call) -> ChatResponse:
        await self._start()
        text = self._reply(req, call)
        return ChatResponse(f"id{next(_IDS)}", call.model, 1, [Choice(0, Message("assistant", [TextPart(text)]), self.finish)], Usage(10, 5))

    async def stream(self, req: ChatRequest, call: Call) -> AsyncIterator[StreamEvent]:
        await self._start()
        text = self._reply(req, call)
        yield StreamStart(f"id{next(_IDS)}", call.model, 1)
        pieces = [text[i : i + self.chunk] for i in range(0, len(text), self.chunk)]
        for i, piece in enumerate(pieces):
            if self.cut_after is not None and i >= self.cut_after:
                raise StreamInterrupted("the fake upstream cut the stream")
            if self.raw:
                import orjson

                data = orjson.dumps({"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                yield RawChunk("openai", b"data: " + data + b"\n\n")  # whole SSE frames
            else:
                yield TextDelta(piece)
        yield StreamFinish(self.finish)  # type: ignore[arg-type]
        yield StreamUsage(Usage(10, 5))

    async def embed(self, req: EmbeddingRequest, call: Call) -> EmbeddingResponse:
        await self._start()
        return EmbeddingResponse(call.model, [self.vectors.get(t, [0.0, 0.0, 1.0]) for t in req.inputs], Usage(3))


def fake_gateway(extra_yaml: str = "") -> tuple[Gateway, FakeProvider, MemoryLedger]:
    ledger = MemoryLedger()
    gw = Gateway(parse_config(BASE + extra_yaml), ledger=ledger)
    fake = FakeProvider(gw.http)
    for route in gw.router.routes.values():
        for dep in route.deployments:
            dep.provider = fake
    return gw, fake, ledger


def make_ctx(endpoint: str = "chat", **options: Any) -> RequestContext:
    return RequestContext(f"req-{next(_IDS)}", "openai", endpoint, time.monotonic(), time.time(), options=Options(**options))


def chat_req(text: str = "hello", model: str = "m", **more: Any) -> ChatRequest:
    return ChatRequest(model, [Message("user", [TextPart(text)])], **more)


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [e async for e in events]


def stream_text(events: list[StreamEvent]) -> str:
    from lmgate.wire.accumulate import Accumulator

    acc = Accumulator()
    for e in events:
        acc.add(e)
    return acc.response().choices[0].message.text()
