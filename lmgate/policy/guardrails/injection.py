"""Prompt-injection phrasing: a small curated set of patterns, plus any from the config.

The curated set covers instruction overrides ("ignore previous instructions"), persona jailbreaks
("you are now DAN", "developer mode") and system-prompt exfiltration ("reveal your system
prompt"). It runs only when the lower-cased text holds one of a few trigger words.
"""

from __future__ import annotations

import re

from lmgate.policy.guardrails.base import RegexDetector, TextFacts, phrase_tail_pattern

_W = r"(?:\s+\w+){0,3}"  # up to three filler words ("all of the", "any", ...)
BUILTIN = [
    # instruction override
    rf"\b(?:ignore|disregard|forget|override|bypass|skip)\b{_W}\s+(?:previous|prior|above|earlier|preceding|former|initial|original|system|your)\b{_W}\s+(?:instructions?|prompts?|rules|directions|directives|guidelines|context|messages?)\b",
    r"\bnew\s+(?:system\s+)?instructions\s*:",
    r"\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must)\s+(?:no\s+longer|not)\s+(?:bound|restricted|limited)",
    # persona jailbreaks
    r"\byou\s+are\s+now\s+(?:DAN|in\s+developer\s+mode|jailbroken|unrestricted|an?\s+unrestricted)\b",
    r"\bdo\s+anything\s+now\b",
    r"\b(?:enable|activate|enter)\b(?:\s+\w+){0,2}\s+(?:developer|god|jailbreak|DAN)\s+mode\b",
    r"\bpretend\s+(?:that\s+)?you\s+(?:have\s+no|are\s+not\s+bound\s+by|don'?t\s+have)\s+(?:restrictions|rules|guidelines|filters|limits)",
    r"\bact\s+as\s+an?\s+(?:unfiltered|unrestricted|uncensored)\b",
    # system prompt exfiltration
    rf"\b(?:reveal|show|print|repeat|output|display|leak|dump|tell\s+me|what\s+(?:is|are|was|were))\b{_W}\s+(?:your|the)\s+(?:system|initial|hidden|original|secret)\s+(?:prompt|instructions|message)s?\b",
    r"\brepeat\s+(?:the\s+)?(?:words|text|everything)\s+above\b",
]
TRIGGERS = (
    "ignore", "disregard", "forget", "override", "bypass", "skip", "instruction", "dan", "do anything",
    "mode", "pretend", "act as", "prompt", "above",
)
MAX_WORDS = 10  # the longest phrase the patterns match, in words (for streamed output)


def detector(action: str, extra: list[str], builtin: bool = True) -> RegexDetector | None:
    patterns = (BUILTIN if builtin else []) + list(extra)
    if action == "off" or not patterns:
        return None
    combined = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    triggers = TRIGGERS if not extra else None  # custom patterns: no trigger words to rely on

    def prefilter(f: TextFacts) -> bool:
        if triggers is None:
            return True
        low = f.lower
        return any(t in low for t in triggers)

    return RegexDetector("injection", action, "REDACTED", combined, prefilter, phrase_tail_pattern(MAX_WORDS), None, _phrase)


def _phrase(s: str) -> str:
    return " ".join(s.split())[:80]
