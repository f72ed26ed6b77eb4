"""ConverseStream events (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata), both ways.

Each event is one event-stream message whose `:event-type` names it and whose JSON payload is
the event's members; the framing itself is `eventstream`.
"""

from __future__ import annotations

import time
from typing import Any

from lmgate.errors import GatewayError, UpstreamError, UpstreamOverloaded, UpstreamRateLimited, UpstreamTimeout, client_error_from_upstream
from lmgate.types import RawChunk, StreamEvent, StreamFinish, StreamStart, StreamUsage, TextDelta, ToolCallDelta, Usage
from lmgate.wire.bedrock import finish_reason, parse_usage, render_usage, stop_reason

Event = tuple[str, dict[str, Any]]


class StreamDecoder:
    """ConverseStream events as canonical events."""

    __slots__ = ("id", "model", "_calls", "usage")

    def __init__(self, response_id: str, model: str) -> None:
        self.id = response_id
        self.model = model
        self._calls: dict[int, int] = {}  # contentBlockIndex -> tool call index
        self.usage: Usage | None = None

    def feed(self, event_type: str | None, ev: dict[str, Any]) -> list[StreamEvent]:
        if event_type == "contentBlockDelta":
            delta = ev.get("delta") or {}
            if "text" in delta:
                return [TextDelta(str(delta["text"]))] if delta["text"] else []
            if "toolUse" in delta:
                call = self._call(int(ev.get("contentBlockIndex") or 0))
                piece = (delta["toolUse"] or {}).get("input") or ""
                return [ToolCallDelta(call, arguments=piece)] if piece else []
            return []  # reasoning, citations
        if event_type == "contentBlockStart":
            use = (ev.get("start") or {}).get("toolUse")
            if use:
                call = self._call(int(ev.get("contentBlockIndex") or 0))
                return [ToolCallDelta(call, str(use.get("toolUseId") or ""), str(use.get("name") or ""))]
            return []
        if event_type == "messageStart":
            return [StreamStart(self.id, self.model, int(time.time()))]
        if event_type == "messageStop":
            return [StreamFinish(finish_reason(ev.get("stopReason")) or "stop")]
        if event_type == "metadata":
            self.usage = parse_usage(ev.get("usage"))
            return [StreamUsage(self.usage)]
        return []

    def _call(self, block_index: int) -> int:
        call = self._calls.get(block_index)
        if call is None:
            call = self._calls[block_index] = len(self._calls)
        return call


def exception_error(exception_type: str, message: str, provider: str) -> GatewayError:
    """A ConverseStream / InvokeModelWithResponseStream exception event as lmgate's own error."""
    t = exception_type.lower()
    if "throttling" in t:
        return UpstreamRateLimited(f"provider {provider} is rate limiting lmgate")
    if "serviceunavailable" in t or "modelnotready" in t:
        return UpstreamOverloaded(f"provider {provider} is overloaded")
    if "timeout" in t:
        return UpstreamTimeout(f"provider {provider} timed out")
    if "validation" in t:
        return client_error_from_upstream(400, f"the upstream refused the request: {message}")
    return UpstreamError(f"provider {provider} failed mid-stream ({exception_type})")


class EventRenderer:
    """Canonical events as ConverseStream events; `finish()` adds messageStop and metadata."""

    __slots__ = ("started", "_open", "_next", "_tools", "_finish", "_usage")

    def __init__(self) -> None:
        self.started = False
        self._open: tuple[str, int] | None = None
        self._next = 0
        self._tools: dict[int, int] = {}
        self._finish: str | None = None
        self._usage: Usage | None = None

    def _start(self) -> list[Event]:
        if self.started:
            return []
        self.started = True
        return [("messageStart", {"role": "assistant"})]

    def _close_open(self) -> list[Event]:
        if self._open is None:
            return []
        index = self._open[1]
        self._open = None
        return [("contentBlockStop", {"contentBlockIndex": index})]

    def events(self, ev: StreamEvent) -> list[Event]:
        if isinstance(ev, RawChunk):
            from lmgate.wire.registry import decode_raw

            return [e for inner in decode_raw(ev) for e in self.events(inner)]
        if isinstance(ev, StreamStart):
            return self._start()
        if isinstance(ev, TextDelta):
            if ev.index != 0 or not ev.text:
                return []
            out = self._start()
            if self._open is None or self._open[0] != "text":
                out += self._close_open()
                self._open = ("text", self._next)
                self._next += 1
            out.append(("contentBlockDelta", {"contentBlockIndex": self._open[1], "delta": {"text": ev.text}}))
            return out
        if isinstance(ev, ToolCallDelta):
            if ev.index != 0:
                return []
            out = self._start()
            index = self._tools.get(ev.call_index)
            if index is None:
                out += self._close_open()
                index = self._tools[ev.call_index] = self._next
                self._next += 1
                self._open = ("tool", index)
                tool_id = ev.id or f"tooluse_{index}"
                out.append(("contentBlockStart", {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": tool_id, "name": ev.name or ""}}}))
            if ev.arguments:
                out.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": ev.arguments}}}))
            return out
        if isinstance(ev, StreamFinish):
            if ev.index == 0:
                self._finish = ev.finish_reason
            return self._start()
        if isinstance(ev, StreamUsage):
            self._usage = ev.usage
        return []

    def finish(self, latency_ms: int) -> list[Event]:
        out = self._start() + self._close_open()
        out.append(("messageStop", {"stopReason": stop_reason(self._finish, bool(self._tools))}))
        out.append(("metadata", {"usage": render_usage(self._usage or Usage()), "metrics": {"latencyMs": latency_ms}}))
        return out
