"""Gemini streams (streamGenerateContent): upstream chunks to canonical events, and canonical
events to chunks for the Gemini surface, framed as SSE (`alt=sse`) or as one streamed JSON array.

Every Gemini chunk is a whole GenerateContentResponse: text parts are deltas, function calls
arrive whole, `finishReason` comes with the last chunk of a candidate, and `usageMetadata`
(cumulative) rides on the chunks; the last one counts.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from lmgate.types import (
    RawChunk,
    StreamEvent,
    StreamFinish,
    StreamStart,
    StreamUsage,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from lmgate.wire import registry
from lmgate.wire.gemini import FORMAT, CallIds, g
from lmgate.wire.gemini_response import error_body, finish_in, finish_out, parse_usage, render_usage


class StreamDecoder:
    """Upstream chunks -> events, with the state a stream needs (call numbering per candidate,
    the latest usage). Minted call ids are written into the chunk, so a same-format surface
    forwarding it shows the same ids."""

    __slots__ = ("ids", "_calls", "usage", "finished")

    def __init__(self, ids: CallIds | None = None) -> None:
        self.ids = ids or CallIds()
        self._calls: dict[int, int] = {}
        self.usage: Usage | None = None
        self.finished = False

    def events(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for i, cand in enumerate(chunk.get("candidates") or ()):
            if not isinstance(cand, dict):
                continue
            idx = int(cand.get("index", i) or 0)
            content = g(cand, "content") or {}
            for part in g(content, "parts") or ():
                if not isinstance(part, dict) or part.get("thought") is True:
                    continue
                text = part.get("text")
                if text:
                    out.append(TextDelta(str(text), idx))
                fc = g(part, "functionCall")
                if isinstance(fc, dict):
                    name = str(fc.get("name") or "")
                    if not fc.get("id"):
                        fc["id"] = self.ids.mint(name)
                    n = self._calls.get(idx, 0)
                    self._calls[idx] = n + 1
                    out.append(ToolCallDelta(n, str(fc["id"]), name, orjson.dumps(fc.get("args") or {}).decode(), idx))
            reason = g(cand, "finishReason")
            if reason:
                self.finished = True
                out.append(StreamFinish(finish_in(reason, self._calls.get(idx, 0) > 0), idx))
        meta = g(chunk, "usageMetadata")
        if isinstance(meta, dict):
            self.usage = parse_usage(meta)
        return out


def decode_chunk(data: bytes) -> list[StreamEvent]:
    """A lone chunk's events (usage left out: the stream's last usage arrives as StreamUsage)."""
    chunk = orjson.loads(data)
    return StreamDecoder().events(chunk) if isinstance(chunk, dict) else []


class ChunkRenderer:
    """Canonical events -> GenerateContentResponse chunks for the Gemini surface.

    Same-format RawChunks are forwarded as they are. Otherwise text goes out as it comes; tool
    calls (streamed in pieces by other protocols) are gathered and sent whole with the finish;
    the finish chunks wait for the usage, which Gemini carries on its last chunk.
    """

    __slots__ = ("sse", "model", "id", "_raw", "_calls", "_finish", "_count")

    def __init__(self, sse: bool, model: str) -> None:
        self.sse = sse
        self.model = model
        self.id = ""
        self._raw = False
        self._calls: dict[int, dict[int, dict[str, Any]]] = {}
        self._finish: dict[int, str] = {}
        self._count = 0

    # -- framing ---------------------------------------------------------------------------

    def frame(self, payload: bytes) -> bytes:
        self._count += 1
        if self.sse:
            return b"data: " + payload + b"\r\n\r\n"
        return (b"[" if self._count == 1 else b",\r\n") + payload

    def close(self) -> bytes:
        if self.sse:
            return b""
        return b"]" if self._count else b"[]"

    def error(self, status: int, message: str, reason: str | None) -> bytes:
        return self.frame(orjson.dumps(error_body(status, message, reason))) + self.close()

    def _obj(self, candidates: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        body: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            body["usageMetadata"] = render_usage(usage)
        body["modelVersion"] = self.model
        body["responseId"] = self.id
        return self.frame(orjson.dumps(body))

    # -- events ----------------------------------------------------------------------------

    def render(self, ev: StreamEvent) -> bytes:
        if isinstance(ev, RawChunk):
            if ev.format == FORMAT:
                self._raw = True
                return self.frame(ev.data)
            return b"".join(self.render(inner) for inner in registry.decode_raw(ev))
        if isinstance(ev, StreamStart):
            self.id = ev.id or f"lmgate-{int(time.time() * 1000)}"
            self.model = self.model or ev.model
            return b""
        if isinstance(ev, TextDelta):
            part = {"content": {"role": "model", "parts": [{"text": ev.text}]}, "index": ev.index}
            return self._obj([part])
        if isinstance(ev, ToolCallDelta):
            call = self._calls.setdefault(ev.index, {}).setdefault(ev.call_index, {"id": None, "name": "", "args": ""})
            if ev.id:
                call["id"] = ev.id
            if ev.name:
                call["name"] = ev.name
            call["args"] += ev.arguments
            return b""
        if isinstance(ev, StreamFinish):
            self._finish[ev.index] = ev.finish_reason
            return b""
        if isinstance(ev, StreamUsage):
            return self._final(ev.usage)
        return b""

    def _final(self, usage: Usage) -> bytes:
        if self._raw and not self._finish and not self._calls:
            return b""  # the forwarded upstream chunks already carried usage and finish
        indexes = sorted(set(self._finish) | set(self._calls)) or [0]
        candidates = []
        for idx in indexes:
            parts = []
            for _, call in sorted(self._calls.get(idx, {}).items()):
                try:
                    args = orjson.loads(call["args"]) if call["args"].strip() else {}
                except orjson.JSONDecodeError:
                    args = {"value": call["args"]}
                fc: dict[str, Any] = {"name": call["name"], "args": args if isinstance(args, dict) else {"value": args}}
                if call["id"]:
                    fc["id"] = call["id"]
                parts.append({"functionCall": fc})
            cand: dict[str, Any] = {"content": {"role": "model", "parts": parts or [{"text": ""}]}, "index": idx}
            reason = self._finish.get(idx)
            if reason:
                cand["finishReason"] = finish_out(reason)
            candidates.append(cand)
        self._calls.clear()
        self._finish.clear()
        return self._obj(candidates, usage)
