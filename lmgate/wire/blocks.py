"""Canonical stream events as a sequence of content blocks: the order Anthropic's SSE events and
Bedrock's ConverseStream events share (message start, one open block at a time, block stops,
the finish and usage held for the end). Each protocol names its events in a subclass."""

from __future__ import annotations

from typing import Any

from lmgate.types import RawChunk, StreamEvent, StreamFinish, StreamStart, StreamUsage, TextDelta, ToolCallDelta, Usage
from lmgate.wire.registry import decode_raw

Event = tuple[str, dict[str, Any]]


class BlockRenderer:
    """The block bookkeeping; subclasses say how each step reads in their protocol."""

    __slots__ = ("started", "_open", "_next", "_tools", "_finish", "_usage")

    def __init__(self) -> None:
        self.started = False
        self._open: tuple[str, int] | None = None  # (kind, block index) of the open block
        self._next = 0
        self._tools: dict[int, int] = {}  # tool call index -> block index
        self._finish: str | None = None
        self._usage: Usage | None = None

    # -- what a subclass names -------------------------------------------------------------

    def _message_start(self) -> list[Event]:
        raise NotImplementedError

    def _on_start(self, ev: StreamStart) -> None:
        """What the upstream's start tells (id, model, usage), before the message opens."""

    def _text_start(self, index: int) -> list[Event]:
        return []

    def _text_delta(self, index: int, text: str) -> Event:
        raise NotImplementedError

    def _tool_start(self, index: int, ev: ToolCallDelta) -> Event:
        raise NotImplementedError

    def _tool_delta(self, index: int, arguments: str) -> Event:
        raise NotImplementedError

    def _block_stop(self, index: int) -> Event:
        raise NotImplementedError

    # -- the sequence ----------------------------------------------------------------------

    def _start(self) -> list[Event]:
        if self.started:
            return []
        self.started = True
        return self._message_start()

    def _close_open(self) -> list[Event]:
        if self._open is None:
            return []
        index = self._open[1]
        self._open = None
        return [self._block_stop(index)]

    def _open_block(self, kind: str) -> tuple[list[Event], int]:
        out = self._close_open()
        index = self._next
        self._next += 1
        self._open = (kind, index)
        return out, index

    def events(self, ev: StreamEvent) -> list[Event]:
        if isinstance(ev, RawChunk):
            return [e for inner in decode_raw(ev) for e in self.events(inner)]
        if isinstance(ev, StreamStart):
            self._on_start(ev)
            return self._start()
        if isinstance(ev, TextDelta):
            if ev.index != 0 or not ev.text:
                return []
            out = self._start()
            if self._open is None or self._open[0] != "text":
                opened, index = self._open_block("text")
                out += opened
                out += self._text_start(index)
            out.append(self._text_delta(self._open[1], ev.text))  # type: ignore[index]
            return out
        if isinstance(ev, ToolCallDelta):
            if ev.index != 0:
                return []
            out = self._start()
            index = self._tools.get(ev.call_index)
            if index is None:
                opened, index = self._open_block("tool")
                self._tools[ev.call_index] = index
                out += opened
                out.append(self._tool_start(index, ev))
            if ev.arguments:
                out.append(self._tool_delta(index, ev.arguments))
            return out
        if isinstance(ev, StreamFinish):
            if ev.index == 0:
                self._finish = ev.finish_reason
            return self._start()
        if isinstance(ev, StreamUsage):
            self._usage = ev.usage
        return []

    def _close(self) -> list[Event]:
        """What `finish()` opens with: the message (if nothing opened it) and the open block closed."""
        return self._start() + self._close_open()
