"""ConverseStream events (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata), both ways.

Each event is one event-stream message whose `:event-type` names it and whose JSON payload is
the event's members; the framing itself is `eventstream`.
"""

from __future__ import annotations

import time
from typing import Any

from lmgate.errors import GatewayError, UpstreamError, UpstreamOverloaded, UpstreamRateLimited, UpstreamTimeout, client_error_from_upstream
from lmgate.types import StreamEvent, StreamFinish, StreamStart, StreamUsage, TextDelta, ToolCallDelta, Usage
from lmgate.wire.bedrock import finish_reason, parse_usage, render_usage, stop_reason
from lmgate.wire.blocks import BlockRenderer, Event


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


class EventRenderer(BlockRenderer):
    """Canonical events as ConverseStream events; `finish()` adds messageStop and metadata."""

    __slots__ = ()

    def _message_start(self) -> list[Event]:
        return [("messageStart", {"role": "assistant"})]

    def _text_delta(self, index: int, text: str) -> Event:
        return ("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": text}})

    def _tool_start(self, index: int, ev: ToolCallDelta) -> Event:
        tool_id = ev.id or f"tooluse_{index}"
        return ("contentBlockStart", {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": tool_id, "name": ev.name or ""}}})

    def _tool_delta(self, index: int, arguments: str) -> Event:
        return ("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": arguments}}})

    def _block_stop(self, index: int) -> Event:
        return ("contentBlockStop", {"contentBlockIndex": index})

    def finish(self, latency_ms: int) -> list[Event]:
        out = self._close()
        out.append(("messageStop", {"stopReason": stop_reason(self._finish, bool(self._tools))}))
        out.append(("metadata", {"usage": render_usage(self._usage or Usage()), "metrics": {"latencyMs": latency_ms}}))
        return out
