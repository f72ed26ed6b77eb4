"""All text checks of one direction (input or output) run as one pass over a text, and what their
findings mean: block raises, mask rewrites, flag records. Every decision lands in ctx.guardrails."""

from __future__ import annotations

from typing import Any, Sequence

from lmgate.errors import GuardrailViolation
from lmgate.policy.guardrails.base import Detector, Finding, Needles, TextFacts, wanted
from lmgate.types import RequestContext

_RANK = {"flag": 0, "mask": 1, "block": 2}


class Scanner:
    __slots__ = ("detectors", "where", "mask_template", "_needles", "_lower_needles")

    def __init__(self, detectors: Sequence[Detector], where: str, mask_template: str) -> None:
        self.detectors = list(detectors)
        self.where = where  # input | output
        self.mask_template = mask_template
        self._needles = Needles(n for d in self.detectors for n in d.needles)
        self._lower_needles = Needles(n for d in self.detectors for n in d.lower_needles)

    def __bool__(self) -> bool:
        return bool(self.detectors)

    def scan(self, text: str) -> list[Finding]:
        """Findings in order, overlaps resolved (the earlier, then the longer, then the stricter wins)."""
        facts = TextFacts(text)
        if self._needles:
            facts.found = self._needles.present(text)
        if self._lower_needles:
            facts.lower_at = self._lower_needles.locate(facts.lower)
            facts.found_lower = frozenset(n for n, _ in facts.lower_at)
        out: list[Finding] = []
        for d in self.detectors:
            if wanted(d, facts):
                d.find(text, facts, out)
        if len(out) < 2:
            return out
        out.sort(key=lambda f: (f.start, -f.end, -_RANK[f.action]))
        kept = [out[0]]
        for f in out[1:]:
            last = kept[-1]
            if f.start < last.end:
                if _RANK[f.action] > _RANK[last.action]:  # a stricter finding inside a looser one wins
                    kept[-1] = Finding(f.check, last.start, max(last.end, f.end), f.action, f.label, f.redacted)
                continue
            kept.append(f)
        return kept

    def tail(self, text: str) -> int:
        """Where a match may still be growing at the end of a streamed text."""
        hold = len(text)
        for d in self.detectors:
            t = d.tail(text)
            if t < hold:
                hold = t
        return hold

    def apply(self, ctx: RequestContext, text: str, findings: list[Finding]) -> str:
        """Record every finding, raise on the first block, return the text with masks applied."""
        if not findings:
            return text
        for f in findings:
            record(ctx, f.check, f.action, self.where, f.redacted)
        for f in findings:
            if f.action == "block":
                raise violation(f.check, self.where, f.redacted)
        pieces: list[str] = []
        pos = 0
        for f in findings:
            if f.action == "mask":
                pieces.append(text[pos : f.start])
                pieces.append(self.mask_template.format(label=f.label))
                pos = f.end
        if not pieces:
            return text
        pieces.append(text[pos:])
        return "".join(pieces)

    def guard(self, ctx: RequestContext, text: str) -> str:
        return self.apply(ctx, text, self.scan(text)) if text else text


def record(ctx: RequestContext, check: str, action: str, where: str, match: str) -> None:
    """One decision per (check, action, where) and request, with a count and the first match."""
    for d in ctx.guardrails:
        if d.get("check") == check and d.get("action") == action and d.get("where") == where:
            d["count"] = d.get("count", 1) + 1
            return
    decision: dict[str, Any] = {"check": check, "action": action, "where": where, "match": match, "count": 1}
    ctx.guardrails.append(decision)


def violation(check: str, where: str, detail: str) -> GuardrailViolation:
    return GuardrailViolation(f"the {where} was blocked by the guardrail '{check}' ({detail})")
