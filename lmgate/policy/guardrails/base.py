"""What every text check shares: findings, the detector shape, the one-pass pre-filter, redaction.

A detector says what a text must contain before its regex is worth running: literal needles (an
`@`, `sk-`, a trigger word) and a number of digits. The scanner finds every needle of every
detector in one Aho-Corasick pass (ahocorasick-rs; plain substring tests if it is missing) and
counts digits once, so a clean prompt costs a couple of passes in native code, not one regex per
check. A detector's `tail` says from where a partial match could still be growing at the end of
a text, so a streamed answer holds back only that much.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

try:
    import ahocorasick_rs
except ImportError:  # pragma: no cover - the dependency is declared; this keeps a broken install working
    ahocorasick_rs = None

TAIL_WINDOW = 512  # a partial match is looked for only in the last this many characters
WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DIGITS = b"0123456789"


@dataclass(slots=True)
class Finding:
    check: str  # e.g. pii.email, secrets.openai_key, injection, words, topic.weapons
    start: int
    end: int
    action: str  # block | mask | flag
    label: str  # what masked text becomes, e.g. EMAIL
    redacted: str  # what matched, safe for the ledger


class TextFacts:
    """What the pre-filters learnt about one text: needles present, digit count, lower-cased form."""

    __slots__ = ("text", "found", "found_lower", "lower_at", "_digits", "_lower")

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: frozenset[str] = frozenset()
        self.found_lower: frozenset[str] = frozenset()
        self.lower_at: list[tuple[str, int]] = []  # (needle, start) in the lower-cased text, in order
        self._digits = -1
        self._lower: str | None = None

    @property
    def digits(self) -> int:
        if self._digits < 0:
            raw = self.text.encode("utf-8", "surrogatepass")
            self._digits = len(raw) - len(raw.translate(None, _DIGITS))
        return self._digits

    @property
    def lower(self) -> str:
        if self._lower is None:
            self._lower = self.text.lower()
        return self._lower


class Needles:
    """Which of a fixed set of literals occur in a text, in one pass."""

    __slots__ = ("needles", "_ac")

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = tuple(sorted({n for n in needles if n}))
        # a few needles are cheaper as substring tests (a one-character one is a memchr)
        many = len(self.needles) > 3
        self._ac = ahocorasick_rs.AhoCorasick(self.needles) if ahocorasick_rs is not None and many else None

    def __bool__(self) -> bool:
        return bool(self.needles)

    def present(self, text: str) -> frozenset[str]:
        if not self.needles:
            return frozenset()
        if self._ac is not None:
            return frozenset(self._ac.find_matches_as_strings(text, overlapping=True))
        return frozenset(n for n in self.needles if n in text)

    def locate(self, text: str) -> list[tuple[str, int]]:
        """Every occurrence as (needle, start), ordered by start."""
        if not self.needles:
            return []
        if self._ac is not None:
            names = self.needles
            found = [(names[i], start) for i, start, _ in self._ac.find_matches_as_indexes(text, overlapping=True)]
            found.sort(key=lambda x: x[1])
            return found
        out = []
        for n in self.needles:
            i = text.find(n)
            while i >= 0:
                out.append((n, i))
                i = text.find(n, i + 1)
        out.sort(key=lambda x: x[1])
        return out


class Detector(Protocol):
    check: str
    action: str
    needles: tuple[str, ...]  # case-sensitive literals, one of which must occur (empty: no condition)
    lower_needles: tuple[str, ...]  # the same, in the lower-cased text
    min_digits: int  # at least this many digits in the text

    def find(self, text: str, facts: TextFacts, out: list[Finding]) -> None: ...

    def tail(self, text: str) -> int:
        """The earliest index from which a match could still be growing at the end of `text`."""
        ...


def wanted(d: Detector, facts: TextFacts) -> bool:
    """Whether the pre-filters allow `d` a match in this text."""
    if d.min_digits and facts.digits < d.min_digits:
        return False
    if d.needles and facts.found.isdisjoint(d.needles):
        return False
    if d.lower_needles and facts.found_lower.isdisjoint(d.lower_needles):
        return False
    return True


@dataclass(slots=True)
class RegexDetector:
    """One pattern, its pre-filter data, an optional validator (Luhn, mod-97) and a redactor."""

    check: str
    action: str
    label: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...] = ()
    lower_needles: tuple[str, ...] = ()
    min_digits: int = 0
    tail_pattern: re.Pattern[str] | None = None
    validate: Callable[[str], bool] | None = None
    redact: Callable[[str], str] = field(default=lambda s: redact_generic(s))
    tail_fn: Callable[[str], int] | None = None  # instead of `tail_pattern`, for unbounded matches
    # A look-behind, checked on the character before a match instead of in the pattern (where it
    # would make Python's engine try every position): None, or characters besides letters, digits
    # and `_` that must not precede the match.
    not_after: str | None = None

    def find(self, text: str, facts: TextFacts, out: list[Finding]) -> None:
        bounded = self.not_after is not None
        for m in self.pattern.finditer(text):
            start = m.start()
            if bounded and start and (text[start - 1] in WORD_CHARS or text[start - 1] in self.not_after):  # type: ignore[operator]
                continue
            s = m.group(0)
            if self.validate is None or self.validate(s):
                out.append(Finding(self.check, start, m.end(), self.action, self.label, self.redact(s)))

    def tail(self, text: str) -> int:
        if self.tail_fn is not None:
            return self.tail_fn(text)
        if self.tail_pattern is None:
            return len(text)
        return tail_of(self.tail_pattern, text)


@dataclass(slots=True)
class AnchoredDetector:
    """Phrases (injection, banned words): the pattern is tried only where one of its first words
    occurs, as a whole word, in the lower-cased text; so its cost follows those occurrences, not
    the text's length. `pattern` is written for lower-case text; `fallback` (case-insensitive) scans
    the original in the rare case where lower-casing changes the text's length."""

    check: str
    action: str
    label: str
    pattern: re.Pattern[str]
    fallback: re.Pattern[str]
    lower_needles: tuple[str, ...]  # the words a match starts with
    tail_pattern: re.Pattern[str]
    classify: Callable[[str], str]  # the matched text -> check name
    redact: Callable[[str], str]
    needles: tuple[str, ...] = ()
    min_digits: int = 0

    def find(self, text: str, facts: TextFacts, out: list[Finding]) -> None:
        low = facts.lower
        if len(low) != len(text):
            for m in self.fallback.finditer(text):
                self._add(text, m.start(), m.end(), out)
            return
        starts = set(self.lower_needles)
        last_end = -1
        for needle, start in facts.lower_at:
            if start < last_end or needle not in starts or (start and low[start - 1] in WORD_CHARS):
                continue
            m = self.pattern.match(low, start)
            if m is not None:
                self._add(text, start, m.end(), out)
                last_end = m.end()

    def _add(self, text: str, start: int, end: int, out: list[Finding]) -> None:
        s = text[start:end]
        out.append(Finding(self.classify(s), start, end, self.action, self.label, self.redact(s)))

    def tail(self, text: str) -> int:
        return tail_of(self.tail_pattern, text)


def tail_of(pattern: re.Pattern[str], text: str) -> int:
    """Where `pattern` (anchored at the end) starts a non-empty partial match within the last
    TAIL_WINDOW characters; len(text) when it does not."""
    m = pattern.search(text, max(0, len(text) - TAIL_WINDOW))
    return m.start() if m and m.end() > m.start() else len(text)


def switched_on(table: list[RegexDetector], actions: dict[str, str]) -> list[RegexDetector]:
    """The detectors of `table` whose type (`pii.email` -> `email`) has an action other than
    `off` in `actions`, in table order, each set to that action."""
    out = []
    for d in table:
        action = actions.get(d.check.split(".", 1)[1], "off")
        if action != "off":
            d.action = action
            out.append(d)
    return out


def redact_generic(s: str) -> str:
    """Keep the first and last two characters of longer strings, e.g. `ab***yz`."""
    s = s.strip()
    if len(s) <= 6:
        return "***"
    return f"{s[:2]}***{s[-2:]}"


def redact_tail(s: str, keep: int = 4) -> str:
    """Numbers: only the last few characters, e.g. `***1234`."""
    chars = [c for c in s if c.isalnum()]
    return "***" + "".join(chars[-keep:]) if len(chars) > keep else "***"


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
