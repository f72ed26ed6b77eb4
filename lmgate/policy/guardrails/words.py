"""Banned words and topics from the config: whole-word, case-insensitive, one regex pass for all.

A topic is a named list of words or phrases (`topics: {weapons: [rifle, "pipe bomb"]}`); a hit
is reported as `topic.<name>`, a banned word as `words`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmgate.policy.guardrails.base import Finding, TextFacts, phrase_tail_pattern


@dataclass(slots=True)
class WordsDetector:
    check: str
    action: str
    pattern: re.Pattern[str]
    owner: dict[str, str]  # lower-cased term -> check name
    tail_pattern: re.Pattern[str]

    def find(self, text: str, facts: TextFacts, out: list[Finding]) -> None:
        for m in self.pattern.finditer(text):
            term = m.group(0)
            check = self.owner.get(" ".join(term.lower().split()), "words")
            out.append(Finding(check, m.start(), m.end(), self.action, "REDACTED", " ".join(term.split())))

    def tail(self, text: str) -> int:
        m = self.tail_pattern.search(text, max(0, len(text) - 512))
        return m.start() if m and m.end() > m.start() else len(text)


def detector(action: str, words: list[str], topics: dict[str, list[str]]) -> WordsDetector | None:
    owner: dict[str, str] = {}
    for w in words:
        owner.setdefault(" ".join(w.lower().split()), "words")
    for name, terms in topics.items():
        for t in terms:
            owner.setdefault(" ".join(t.lower().split()), f"topic.{name}")
    owner.pop("", None)
    if action == "off" or not owner:
        return None
    # longest first, so "pipe bomb" wins over "pipe"; inner whitespace matches any run of it
    terms = sorted(owner, key=len, reverse=True)
    body = "|".join(r"\s+".join(re.escape(part) for part in t.split()) for t in terms)
    pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)
    longest = max(len(t.split()) for t in terms)
    return WordsDetector("words", action, pattern, owner, phrase_tail_pattern(longest))
