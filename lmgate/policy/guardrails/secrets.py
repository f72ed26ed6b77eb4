"""Credentials: provider API keys, AWS access keys, GitHub and Slack tokens, private key blocks,
JWTs and bearer tokens. Each pattern runs only when its literal prefix is in the text."""

from __future__ import annotations

import re

from lmgate.policy.guardrails.base import RegexDetector, redact_prefix

OPENAI_KEY = re.compile(r"(?<![\w-])sk-(?:proj-|ant-(?:api\d\d-)?|live-|test-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")
AWS_KEY = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])")
GITHUB = re.compile(r"(?<!\w)(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})")
SLACK = re.compile(r"(?<![\w-])xox[abposr]-[A-Za-z0-9-]{10,}")
GOOGLE = re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}")
PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)"
)
JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
BEARER = re.compile(r"\b[Bb]earer\s+[A-Za-z0-9._~+/-]{16,}=*")

TOKEN_TAIL = re.compile(r"[\w.~+/=-]+$")
BEARER_TAIL = re.compile(r"\b[Bb]earer\s+[\w.~+/=-]*$|\b[Bb](?:e(?:a(?:r(?:e(?:r)?)?)?)?)?$")
KEY_HEADER_TAIL = re.compile(r"-{1,5}(?:B[A-Z ]*)?$")


def key_tail(text: str) -> int:
    """An open private key block is held from its header until its END line (or the end)."""
    begin = text.rfind("-----BEGIN ")
    if begin >= 0 and text.find("-----END ", begin) < 0:
        return begin
    m = KEY_HEADER_TAIL.search(text, max(0, len(text) - 64))
    return m.start() if m else len(text)


def _has(*needles: str):  # type: ignore[no-untyped-def]
    if len(needles) == 1:
        needle = needles[0]
        return lambda f: needle in f.text
    return lambda f: any(n in f.text for n in needles)


def detectors(actions: dict[str, str]) -> list[RegexDetector]:
    table = [
        RegexDetector("secrets.private_key", "", "PRIVATE_KEY", PRIVATE_KEY, _has("-----BEGIN"), None, None, lambda s: "-----BEGIN ***", key_tail),
        RegexDetector("secrets.bearer_token", "", "SECRET", BEARER, _has("earer"), BEARER_TAIL, None, lambda s: "Bearer ***"),
        RegexDetector("secrets.jwt", "", "SECRET", JWT, _has("eyJ"), TOKEN_TAIL, None, lambda s: "eyJ***"),
        RegexDetector("secrets.openai_key", "", "SECRET", OPENAI_KEY, _has("sk-"), TOKEN_TAIL, None, redact_prefix),
        RegexDetector("secrets.aws_access_key", "", "SECRET", AWS_KEY, _has("AKIA", "ASIA"), TOKEN_TAIL, None, redact_prefix),
        RegexDetector("secrets.github_token", "", "SECRET", GITHUB, _has("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), TOKEN_TAIL, None, redact_prefix),
        RegexDetector("secrets.slack_token", "", "SECRET", SLACK, _has("xox"), TOKEN_TAIL, None, redact_prefix),
        RegexDetector("secrets.google_api_key", "", "SECRET", GOOGLE, _has("AIza"), TOKEN_TAIL, None, redact_prefix),
    ]
    out = []
    for d in table:
        action = actions.get(d.check.split(".", 1)[1], "off")
        if action != "off":
            d.action = action
            out.append(d)
    return out

