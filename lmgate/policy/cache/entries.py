"""What a cache entry holds and how it turns back into an answer or a replayed stream.

Entries are protocol-neutral (the canonical answer, never an upstream body), so an answer stored
from one surface or provider is rendered by any other, and a streamed answer serves a whole
request and the reverse. Encoded with orjson; a few hundred bytes for an ordinary answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

import orjson

from lmgate.types import (
    ChatResponse,
    Choice,
    EmbeddingResponse,
    Message,
    StreamEvent,
    StreamFinish,
    StreamStart,
    StreamUsage,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)

_USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens", "input_chars", "output_chars")
REPLAY_CHUNK = 48  # characters per replayed text delta


def snapshot_chat(resp: ChatResponse) -> list[Any]:
    """The parts of an answer worth keeping, taken before later steps (output masking) touch it."""
    choices = [
        [c.index, c.message.text(), [[t.id, t.name, t.arguments] for t in c.message.tool_calls], c.finish_reason] for c in resp.choices
    ]
    return [resp.id, resp.model, resp.created, choices]


def cacheable(snapshot: list[Any]) -> bool:
    """Only complete answers: every choice finished for a reason that is not an error or a filter."""
    choices = snapshot[3]
    return bool(choices) and all(c[3] not in (None, "error", "content_filter") for c in choices)


def _usage_list(u: Usage) -> list[int]:
    return [getattr(u, f) for f in _USAGE_FIELDS]


def _usage(values: list[int]) -> Usage:
    return Usage(*values)


def encode_chat(snapshot: list[Any], usage: Usage, cost_usd: float, served_model: str | None) -> bytes:
    return orjson.dumps({"k": "chat", "r": snapshot, "u": _usage_list(usage), "c": cost_usd, "m": served_model, "t": time.time()})


def encode_embedding(resp: EmbeddingResponse, served_model: str | None) -> bytes:
    return orjson.dumps({"k": "emb", "v": resp.vectors, "mo": resp.model, "u": _usage_list(resp.usage), "c": resp.cost_usd, "m": served_model, "t": time.time()})


@dataclass(slots=True)
class Entry:
    """A decoded entry; every accessor builds fresh objects, since surfaces may change what they get."""

    data: dict[str, Any]

    @classmethod
    def decode(cls, raw: bytes) -> "Entry | None":
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return cls(data) if isinstance(data, dict) and "k" in data else None

    @property
    def kind(self) -> str:
        return self.data["k"]

    @property
    def cost_usd(self) -> float:
        return float(self.data.get("c") or 0.0)

    @property
    def served_model(self) -> str | None:
        return self.data.get("m")

    def usage(self) -> Usage:
        return _usage(self.data["u"])

    def chat_response(self) -> ChatResponse:
        rid, model, created, choices = self.data["r"]
        out = []
        for index, text, calls, finish in choices:
            content = [TextPart(text)] if text or not calls else []
            out.append(Choice(index, Message("assistant", content, [ToolCall(*c) for c in calls]), finish))
        return ChatResponse(rid, model, created, out, self.usage(), 0.0)

    def embedding_response(self) -> EmbeddingResponse:
        return EmbeddingResponse(self.data.get("mo") or "", self.data["v"], self.usage(), 0.0)

    async def replay(self) -> AsyncIterator[StreamEvent]:
        """The answer as the canonical events a provider would have streamed."""
        for ev in self.events():
            yield ev

    def events(self) -> list[StreamEvent]:
        rid, model, created, choices = self.data["r"]
        events: list[StreamEvent] = [StreamStart(rid, model, created)]
        for index, text, calls, finish in choices:
            for i in range(0, len(text), REPLAY_CHUNK):
                events.append(TextDelta(text[i : i + REPLAY_CHUNK], index))
            for n, (cid, name, args) in enumerate(calls):
                events.append(ToolCallDelta(n, cid, name, args, index))
            events.append(StreamFinish(finish, index))
        events.append(StreamUsage(self.usage(), 0.0))
        return events
