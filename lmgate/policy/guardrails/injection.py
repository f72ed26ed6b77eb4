"""Prompt-injection phrasing: a small curated set of patterns, plus any from the config.

The curated set covers instruction overrides ("ignore previous instructions"), persona jailbreaks
("you are now DAN", "developer mode") and system-prompt exfiltration ("reveal your system
prompt"). Each pattern starts with one of a few words, and is only tried where such a word occurs
(found for every check at once by the scanner's pre-filter). Patterns from the config are
matched case-insensitively over the whole text.
"""

from __future__ import annotations

import re

from lmgate.policy.guardrails.base import AnchoredDetector, RegexDetector, phrase_tail_pattern

_W = r"(?:\s+[a-z']+){0,3}"  # up to three filler words ("all of the", "any", ...)
# (the words a match starts with, the rest of the pattern), all lower-case
BUILTIN: list[tuple[tuple[str, ...], str]] = [
    # instruction override
    (
        ("ignore", "disregard", "forget", "override", "bypass", "skip"),
        rf"(?:ignore|disregard|forget|override|bypass|skip){_W}\s+(?:previous|prior|above|earlier|preceding|former|initial|original|system|your)\b{_W}\s+(?:instructions?|prompts?|rules|directions|directives|guidelines|context|messages?)\b",
    ),
    (("new",), r"new\s+(?:system\s+)?instructions\s*:"),
    (("from",), r"from\s+now\s+on,?\s+you\s+(?:are|will|must)\s+(?:no\s+longer|not)\s+(?:bound|restricted|limited)"),
    # persona jailbreaks
    (("you",), r"you\s+are\s+now\s+(?:dan|in\s+developer\s+mode|jailbroken|unrestricted|an?\s+unrestricted)\b"),
    (("do",), r"do\s+anything\s+now\b"),
    (("enable", "activate", "enter"), r"(?:enable|activate|enter)(?:\s+[a-z]+){0,2}\s+(?:developer|god|jailbreak|dan)\s+mode\b"),
    (("pretend",), r"pretend\s+(?:that\s+)?you\s+(?:have\s+no|are\s+not\s+bound\s+by|don'?t\s+have)\s+(?:restrictions|rules|guidelines|filters|limits)"),
    (("act",), r"act\s+as\s+an?\s+(?:unfiltered|unrestricted|uncensored)\b"),
    # system prompt exfiltration
    (
        ("reveal", "show", "print", "repeat", "output", "display", "leak", "dump", "tell", "what"),
        rf"(?:reveal|show|print|repeat|output|display|leak|dump|tell\s+me|what\s+(?:is|are|was|were))\b{_W}\s+(?:your|the)\s+(?:system|initial|hidden|original|secret)\s+(?:prompt|instructions|message)s?\b",
    ),
    (("repeat",), r"repeat\s+(?:the\s+)?(?:words|text|everything)\s+above\b"),
]
MAX_WORDS = 12  # the longest phrase the patterns match, in words (for streamed output)


def detectors(action: str, extra: list[str], builtin: bool = True) -> list[AnchoredDetector | RegexDetector]:
    if action == "off":
        return []
    out: list[AnchoredDetector | RegexDetector] = []
    tail = phrase_tail_pattern(MAX_WORDS)
    if builtin:
        body = "|".join(f"(?:{p})" for _, p in BUILTIN)
        starts = tuple(sorted({w for words, _ in BUILTIN for w in words}))
        out.append(
            AnchoredDetector(
                "injection", action, "REDACTED", re.compile(body), re.compile(body, re.IGNORECASE), starts, tail, lambda s: "injection", _phrase
            )
        )
    if extra:
        combined = re.compile("|".join(f"(?:{p})" for p in extra), re.IGNORECASE)
        out.append(RegexDetector("injection", action, "REDACTED", combined, tail_pattern=tail, redact=_phrase))
    return out


def _phrase(s: str) -> str:
    return " ".join(s.split())[:80]
