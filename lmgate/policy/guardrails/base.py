"""What every text check shares: findings, the detector shape, redaction for the ledger.

A detector finds spans in one text. `tail` says from where a partial match could still be in
progress at the end of the text, so a streamed answer holds back only that much.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Protocol


@dataclass(slots=True)
class Finding:
    check: str  # e.g. pii.email, secrets.openai_key, injection, words, topic.weapons
    start: int
    end: int
    action: str  # block | mask | flag
    label: str  # what masked text becomes, e.g. EMAIL
    redacted: str  # what matched, safe for the ledger


class Detector(Protocol):
    check: str
    action: str

    def find(self, text: str, facts: "TextFacts", out: list[Finding]) -> None: ...

    def tail(self, text: str) -> int:
        """The earliest index from which a match could still be growing at the end of `text`."""
        ...


class TextFacts:
    """Cheap facts about a text, computed at most once and shared by every detector's pre-filter."""

    __slots__ = ("text", "_digits", "_lower")

    def __init__(self, text: str) -> None:
        self.text = text
        self._digits = -1
        self._lower: str | None = None

    @property
    def digits(self) -> int:
        if self._digits < 0:
            t = self.text
            self._digits = sum(map(t.count, "0123456789"))
        return self._digits

    @property
    def lower(self) -> str:
        if self._lower is None:
            self._lower = self.text.lower()
        return self._lower


@dataclass(slots=True)
class RegexDetector:
    """One pattern, a cheap pre-filter, an optional validator (Luhn, mod-97) and a redactor."""

    check: str
    action: str
    label: str
    pattern: re.Pattern[str]
    prefilter: Callable[[TextFacts], bool]
    tail_pattern: re.Pattern[str] | None = None
    validate: Callable[[str], bool] | None = None
    redact: Callable[[str], str] = lambda s: redact_generic(s)
    tail_fn: Callable[[str], int] | None = None  # instead of `tail_pattern`, for unbounded matches

    def find(self, text: str, facts: TextFacts, out: list[Finding]) -> None:
        if not self.prefilter(facts):
            return
        for m in self.pattern.finditer(text):
            s = m.group(0)
            if self.validate is None or self.validate(s):
                out.append(Finding(self.check, m.start(), m.end(), self.action, self.label, self.redact(s)))

    def tail(self, text: str) -> int:
        if self.tail_fn is not None:
            return self.tail_fn(text)
        if self.tail_pattern is None:
            return len(text)
        m = self.tail_pattern.search(text, max(0, len(text) - TAIL_WINDOW))
        return m.start() if m and m.end() > m.start() else len(text)


TAIL_WINDOW = 512  # a partial match is looked for only in the last this many characters


def redact_generic(s: str) -> str:
    """Keep the first and last two characters of longer strings, e.g. `ab***yz`."""
    s = s.strip()
    if len(s) <= 6:
        return "***"
    return f"{s[:2]}***{s[-2:]}"


def redact_tail(s: str, keep: int = 4) -> str:
    """Numbers: only the last few digits, e.g. `***1234`."""
    digits = [c for c in s if c.isalnum()]
    return "***" + "".join(digits[-keep:]) if len(digits) > keep else "***"


def redact_email(s: str) -> str:
    """`john.doe@example.com` -> `j***@e***.com`."""
    local, _, domain = s.partition("@")
    host, _, tld = domain.rpartition(".")
    return f"{local[:1]}***@{host[:1]}***.{tld}"


def redact_prefix(s: str, keep: int = 4) -> str:
    """Secrets: only the kind-revealing prefix, e.g. `sk-p***`."""
    return s[:keep] + "***"


def phrase_tail_pattern(words: int) -> re.Pattern[str]:
    """The last `words - 1` whole words and a partial one: a phrase of `words` words could still be growing there."""
    return re.compile(r"(?:\S+\s+){0,%d}\S*$" % max(0, words - 1))
