"""Banned words and topics from the config: whole-word, case-insensitive.

A topic is a named list of words or phrases (`topics: {weapons: [rifle, "pipe bomb"]}`); a hit is
reported as `topic.<name>`, a banned word as `words`. The pattern is tried only where a term's
first word occurs (found by the scanner's one-pass pre-filter), so a long list costs little more
than a short one.
"""

from __future__ import annotations

import re

from lmgate.policy.guardrails.base import AnchoredDetector, phrase_tail_pattern


def detector(action: str, words: list[str], topics: dict[str, list[str]]) -> AnchoredDetector | None:
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
    body = "(?:" + "|".join(r"\s+".join(re.escape(part) for part in t.split()) for t in terms) + r")(?!\w)"
    longest = max(len(t.split()) for t in terms)
    first_words = tuple(sorted({t.split()[0] for t in terms}))

    def classify(matched: str) -> str:
        return owner.get(" ".join(matched.lower().split()), "words")

    return AnchoredDetector(
        "words", action, "REDACTED", re.compile(body), re.compile(body, re.IGNORECASE), first_words, phrase_tail_pattern(longest), classify,
        lambda s: " ".join(s.split()),
    )
