"""A deployment's own capacity (`rpm`, `tpm`): what lmgate sent it in the last 60 s, never more.

Each call takes an entry when it starts (its prompt's token estimate) and settles it when it ends
(the tokens really used). An entry leaves the window 60 s after its start, but never while its
call is still running, so long calls and streams keep counting. Per process: several workers or
instances each enforce the whole limit (see the router's notes).
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0


class Entry:
    """One call's share of the window."""

    __slots__ = ("at", "tokens", "open")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens
        self.open = True


class Window:
    """Requests and tokens of one deployment over the last minute, plus those still running."""

    __slots__ = ("rpm", "tpm", "entries", "tokens")

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.entries: deque[Entry] = deque()
        self.tokens = 0

    def _prune(self, now: float) -> None:
        entries = self.entries
        horizon = now - WINDOW_S
        while entries and entries[0].at <= horizon and not entries[0].open:
            self.tokens -= entries.popleft().tokens

    def _need(self, tokens: int) -> int:
        # A prompt larger than the whole tpm can still run, alone in an empty window.
        return min(tokens, self.tpm) if self.tpm else tokens

    def headroom(self, now: float, tokens: int) -> bool:
        """Would one more call of `tokens` stay within rpm and tpm?"""
        self._prune(now)
        if self.rpm is not None and len(self.entries) >= self.rpm:
            return False
        if self.tpm is not None and self.tokens + self._need(tokens) > self.tpm:
            return False
        return True

    def ready_in(self, now: float, tokens: int) -> float | None:
        """Seconds until there may be room (None: not foreseeable, a running call holds it)."""
        self._prune(now)
        if self.headroom(now, tokens):
            return 0.0
        first = self.entries[0] if self.entries else None
        if first is None or first.open:
            return None
        return max(0.0, first.at + WINDOW_S - now)

    def take(self, now: float, tokens: int) -> Entry:
        entry = Entry(now, self._need(tokens))
        self.entries.append(entry)
        self.tokens += entry.tokens
        return entry

    def settle(self, entry: Entry, tokens: int | None) -> None:
        """The call ended; replace its estimate with the tokens really used, when known."""
        if not entry.open:
            return
        entry.open = False
        if tokens is not None and tokens > 0:
            self.tokens += tokens - entry.tokens
            entry.tokens = tokens

    def used(self, now: float) -> tuple[int, int]:
        """(requests, tokens) counted in the window now."""
        self._prune(now)
        return len(self.entries), self.tokens
