"""One accumulator folds a stream's events into a whole answer, so cache, guardrails and
accounting treat streamed and whole answers the same."""

from __future__ import annotations

from lmgate.types import (
    ChatResponse,
    Choice,
    Message,
    RawChunk,
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
from lmgate.wire import registry


class Accumulator:
    __slots__ = ("id", "model", "created", "_text", "_calls", "_finish", "usage", "saw_usage", "output_chars")

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self._text: dict[int, list[str]] = {}
        self._calls: dict[int, dict[int, ToolCall]] = {}
        self._finish: dict[int, str] = {}
        self.usage = Usage()
        self.saw_usage = False
        self.output_chars = 0

    def add(self, ev: StreamEvent) -> None:
        if isinstance(ev, RawChunk):
            for inner in ev.events if ev.events is not None else registry.decode_raw(ev):
                self.add(inner)
        elif isinstance(ev, TextDelta):
            self._text.setdefault(ev.index, []).append(ev.text)
            self.output_chars += len(ev.text)
        elif isinstance(ev, ToolCallDelta):
            calls = self._calls.setdefault(ev.index, {})
            call = calls.get(ev.call_index)
            if call is None:
                calls[ev.call_index] = ToolCall(ev.id or "", ev.name or "", ev.arguments)
            else:
                if ev.id and not call.id:
                    call.id = ev.id
                if ev.name and not call.name:
                    call.name = ev.name
                call.arguments += ev.arguments
        elif isinstance(ev, StreamFinish):
            self._finish[ev.index] = ev.finish_reason
        elif isinstance(ev, StreamUsage):
            self.usage = ev.usage
            self.saw_usage = True
        elif isinstance(ev, StreamStart):
            self.id, self.model, self.created = ev.id, ev.model, ev.created

    @property
    def finished(self) -> bool:
        return bool(self._finish)

    def response(self) -> ChatResponse:
        indexes = sorted(set(self._text) | set(self._calls) | set(self._finish)) or [0]
        choices = []
        for i in indexes:
            text = "".join(self._text.get(i, ()))
            calls = [c for _, c in sorted(self._calls.get(i, {}).items())]
            content = [TextPart(text)] if text or not calls else []
            choices.append(Choice(i, Message("assistant", content, calls), self._finish.get(i)))  # type: ignore[arg-type]
        return ChatResponse(self.id, self.model, self.created, choices, self.usage)
