"""The Anthropic Messages SSE event sequence, both ways.

Upstream events (message_start, content_block_start/delta/stop, message_delta, message_stop)
become canonical stream events; canonical events become that sequence again, as event dicts a
surface frames as SSE (`event:` lines) or Bedrock wraps in event-stream chunks.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from lmgate.errors import GatewayError, UpstreamError, UpstreamOverloaded, UpstreamRateLimited
from lmgate.types import StreamEvent, StreamFinish, StreamStart, StreamUsage, TextDelta, ToolCallDelta, Usage
from lmgate.wire.anthropic import finish_reason, new_id, parse_usage, render_usage, stop_reason
from lmgate.wire.blocks import BlockRenderer, Event
from lmgate.wire.sse import encode_sse


class StreamDecoder:
    """Folds one upstream message's events into canonical events; usage is kept across them."""

    __slots__ = ("usage", "_calls", "started", "stopped")

    def __init__(self) -> None:
        self.usage = Usage()
        self._calls: dict[int, int] = {}  # content block index -> tool call index
        self.started = False
        self.stopped = False

    def feed(self, ev: dict[str, Any]) -> list[StreamEvent]:
        kind = ev.get("type")
        if kind == "content_block_delta":
            delta = ev.get("delta") or {}
            dkind = delta.get("type")
            if dkind == "text_delta":
                text = delta.get("text") or ""
                return [TextDelta(text)] if text else []
            if dkind == "input_json_delta":
                call = self._calls.get(int(ev.get("index") or 0))
                piece = delta.get("partial_json") or ""
                return [ToolCallDelta(call, arguments=piece)] if call is not None and piece else []
            return []  # thinking, signature and citation deltas have no canonical form
        if kind == "content_block_start":
            block = ev.get("content_block") or {}
            if block.get("type") == "text" and block.get("text"):
                return [TextDelta(str(block["text"]))]
            if block.get("type") == "tool_use":
                call = len(self._calls)
                self._calls[int(ev.get("index") or 0)] = call
                initial = block.get("input")
                args = orjson.dumps(initial).decode() if initial else ""
                return [ToolCallDelta(call, str(block.get("id") or ""), str(block.get("name") or ""), args)]
            return []
        if kind == "message_start":
            msg = ev.get("message") or {}
            self.started = True
            self.usage = parse_usage(msg.get("usage"))
            start_usage = Usage(self.usage.input_tokens, 0, self.usage.cached_tokens, self.usage.cache_write_tokens)
            return [StreamStart(str(msg.get("id") or ""), str(msg.get("model") or ""), int(time.time()), start_usage)]
        if kind == "message_delta":
            self._update_usage(ev.get("usage") or {})
            reason = (ev.get("delta") or {}).get("stop_reason")
            return [StreamFinish(finish_reason(reason))] if reason else []
        if kind == "message_stop":
            self.stopped = True
            metrics = ev.get("amazon-bedrock-invocationMetrics")
            if isinstance(metrics, dict) and not self.usage.input_tokens:
                self.usage.input_tokens = int(metrics.get("inputTokenCount") or 0)
                self.usage.output_tokens = self.usage.output_tokens or int(metrics.get("outputTokenCount") or 0)
            return [StreamUsage(self.usage)]
        return []  # ping, unknown future events

    def _update_usage(self, u: dict[str, Any]) -> None:
        """message_delta usage is cumulative: it replaces, never adds."""
        if u.get("output_tokens") is not None:
            self.usage.output_tokens = int(u["output_tokens"])
        cached = u.get("cache_read_input_tokens")
        written = u.get("cache_creation_input_tokens")
        fresh = u.get("input_tokens")
        if cached is not None or written is not None or fresh is not None:
            c = int(cached) if cached is not None else self.usage.cached_tokens
            w = int(written) if written is not None else self.usage.cache_write_tokens
            old_fresh = self.usage.input_tokens - self.usage.cached_tokens - self.usage.cache_write_tokens
            fr = int(fresh) if fresh is not None else old_fresh
            self.usage.cached_tokens, self.usage.cache_write_tokens = c, w
            self.usage.input_tokens = fr + c + w


def stream_error(ev: dict[str, Any], provider: str, redact: Any) -> GatewayError:
    """An `error` event inside a stream, as lmgate's own error."""
    err = ev.get("error") or {}
    kind = err.get("type")
    msg = redact(str(err.get("message") or "")) if err.get("message") else ""
    if kind == "overloaded_error":
        return UpstreamOverloaded(f"provider {provider} is overloaded")
    if kind == "rate_limit_error":
        return UpstreamRateLimited(f"provider {provider} is rate limiting lmgate")
    return UpstreamError(f"provider {provider} failed mid-stream: {msg}" if msg else f"provider {provider} failed mid-stream")


class EventRenderer(BlockRenderer):
    """Canonical stream events as Anthropic's event sequence (event name, data dict).

    Blocks open and close as the content changes kind; `finish()` closes the message with the
    stop reason and the usage that arrived at the end (input tokens included, which the SDKs
    take from message_delta).
    """

    __slots__ = ("id", "model", "_start_usage")

    def __init__(self, model: str | None = None, msg_id: str | None = None) -> None:
        super().__init__()
        self.id = msg_id or ""
        self.model = model or ""
        self._start_usage: Usage | None = None  # what message_start tells (the upstream's, if it said)

    def _on_start(self, ev: StreamStart) -> None:
        if not self.id:
            self.id = ev.id
        self.model = self.model or ev.model
        self._start_usage = ev.usage

    def _message_start(self) -> list[Event]:
        if not self.id.startswith("msg"):
            self.id = new_id("msg_")
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": render_usage(self._start_usage or Usage()),
        }
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _text_start(self, index: int) -> list[Event]:
        return [("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})]

    def _text_delta(self, index: int, text: str) -> Event:
        return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})

    def _tool_start(self, index: int, ev: ToolCallDelta) -> Event:
        block = {"type": "tool_use", "id": ev.id or new_id("toolu_"), "name": ev.name or "", "input": {}}
        return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def _tool_delta(self, index: int, arguments: str) -> Event:
        return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": arguments}})

    def _block_stop(self, index: int) -> Event:
        return ("content_block_stop", {"type": "content_block_stop", "index": index})

    def finish(self, extra: dict[str, Any] | None = None) -> list[Event]:
        """Close the open block and the message; `extra` joins message_stop (Bedrock's metrics)."""
        out = self._close()
        usage = render_usage(self._usage or Usage())
        delta = {"stop_reason": stop_reason(self._finish, bool(self._tools)), "stop_sequence": None}
        out.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        stop: dict[str, Any] = {"type": "message_stop"}
        if extra:
            stop.update(extra)
        out.append(("message_stop", stop))
        return out


def sse(events: list[Event]) -> bytes:
    return b"".join(encode_sse(orjson.dumps(data), name) for name, data in events)


def error_event(body: dict[str, Any]) -> bytes:
    return encode_sse(orjson.dumps(body), "error")
