"""Output guardrails on a streamed answer.

Text is passed on as it comes, except the tail that a pattern could still match (a word that may
become an e-mail, digits that may become a card number, an open private key block): that is held
until it can no longer grow, then masked or passed. Tool-call arguments are held until their
choice finishes. A block ends the stream with GuardrailViolation, which the surface renders as
its own error event. Same-format RawChunks are decoded and re-emitted as canonical events, since
their text may change. Checks that need the whole text (JSON schema with block, the judge) hold
the choice's text until it finishes.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable

from lmgate.policy.guardrails.scanner import Scanner
from lmgate.types import RawChunk, RequestContext, StreamEvent, StreamFinish, TextDelta, ToolCallDelta
from lmgate.wire.registry import decode_raw

# Checks run on a choice's whole (masked) text when it finishes: (ctx, text) -> None or raise.
FinalCheck = Callable[[RequestContext, str], Awaitable[None]]


class StreamGuard:
    def __init__(self, ctx: RequestContext, scanner: Scanner, *, hold_all: bool, final_checks: list[FinalCheck]) -> None:
        self.ctx = ctx
        self.scanner = scanner
        self.hold_all = hold_all
        self.final_checks = final_checks
        self.held: dict[int, str] = {}  # choice -> text not yet passed on
        self.sent: dict[int, list[str]] = {}  # choice -> text passed on (for final checks)
        self.calls: dict[int, dict[int, list[Any]]] = {}  # choice -> call index -> [id, name, arguments]
        self.done: set[int] = set()

    async def wrap(self, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        try:
            async for ev in events:
                for e in decode_raw(ev) if isinstance(ev, RawChunk) else (ev,):
                    for out in await self._on(e):
                        yield out
            for index in sorted(set(self.held) | set(self.calls)):
                if index not in self.done:
                    for out in await self._finish(index):
                        yield out
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _on(self, e: StreamEvent) -> list[StreamEvent]:
        if isinstance(e, TextDelta):
            self.held[e.index] = self.held.get(e.index, "") + e.text
            return [] if self.hold_all else self._release(e.index, final=False)
        if isinstance(e, ToolCallDelta):
            call = self.calls.setdefault(e.index, {}).setdefault(e.call_index, [None, None, ""])
            call[0] = call[0] or e.id
            call[1] = call[1] or e.name
            call[2] += e.arguments
            return []
        if isinstance(e, StreamFinish):
            return [*await self._finish(e.index), e]
        return [e]  # StreamStart, StreamUsage

    def _release(self, index: int, final: bool) -> list[StreamEvent]:
        text = self.held.get(index, "")
        if not text:
            return []
        findings = self.scanner.scan(text)
        cut = len(text) if final else self.scanner.tail(text)
        moved = True
        while moved:  # a match straddling the cut may still grow: hold it whole
            moved = False
            for f in findings:
                if f.start < cut < f.end:
                    cut, moved = f.start, True
        if cut <= 0:
            return []
        ready = [f for f in findings if f.end <= cut]
        out = self.scanner.apply(self.ctx, text[:cut], ready)
        self.held[index] = text[cut:]
        self.sent.setdefault(index, []).append(out)
        return [TextDelta(out, index)] if out else []

    async def _finish(self, index: int) -> list[StreamEvent]:
        self.done.add(index)
        out = self._release(index, final=True)
        if self.final_checks:
            whole = "".join(self.sent.get(index, ()))
            for check in self.final_checks:
                await check(self.ctx, whole)
        for n, (cid, name, args) in sorted(self.calls.get(index, {}).items()):
            out.append(ToolCallDelta(n, cid, name, self.scanner.guard(self.ctx, args) if self.scanner else args, index))
        return out

