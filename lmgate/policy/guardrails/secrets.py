"""Credentials: provider API keys, AWS access keys, GitHub and Slack tokens, private key blocks,
JWTs and bearer tokens. Each pattern runs only when its literal prefix is in the text (found for
all of them at once by the scanner's pre-filter)."""

from __future__ import annotations

import re

from lmgate.policy.guardrails.base import RegexDetector, redact_prefix, switched_on

OPENAI_KEY = re.compile(r"sk-(?:proj-|ant-(?:api\d\d-)?|live-|test-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")
AWS_KEY = re.compile(r"A(?:KIA|SIA)[0-9A-Z]{16}(?![A-Z0-9])")
GITHUB = re.compile(r"g(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})")
SLACK = re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}")
GOOGLE = re.compile(r"AIza[0-9A-Za-z_-]{35}")
PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)"
)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
BEARER = re.compile(r"[Bb]earer\s+[A-Za-z0-9._~+/-]{16,}=*")

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


def detectors(actions: dict[str, str]) -> list[RegexDetector]:
    gh = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")
    table = [
        RegexDetector("secrets.private_key", "", "PRIVATE_KEY", PRIVATE_KEY, ("-----BEGIN",), redact=lambda s: "-----BEGIN ***", tail_fn=key_tail),
        RegexDetector("secrets.bearer_token", "", "SECRET", BEARER, ("earer",), tail_pattern=BEARER_TAIL, redact=lambda s: "Bearer ***", not_after=""),
        RegexDetector("secrets.jwt", "", "SECRET", JWT, ("eyJ",), tail_pattern=TOKEN_TAIL, redact=lambda s: "eyJ***", not_after="-"),
        RegexDetector("secrets.openai_key", "", "SECRET", OPENAI_KEY, ("sk-",), tail_pattern=TOKEN_TAIL, redact=redact_prefix, not_after="-"),
        RegexDetector("secrets.aws_access_key", "", "SECRET", AWS_KEY, ("AKIA", "ASIA"), tail_pattern=TOKEN_TAIL, redact=redact_prefix, not_after="-"),
        RegexDetector("secrets.github_token", "", "SECRET", GITHUB, gh, tail_pattern=TOKEN_TAIL, redact=redact_prefix, not_after="-"),
        RegexDetector("secrets.slack_token", "", "SECRET", SLACK, ("xox",), tail_pattern=TOKEN_TAIL, redact=redact_prefix, not_after="-"),
        RegexDetector("secrets.google_api_key", "", "SECRET", GOOGLE, ("AIza",), tail_pattern=TOKEN_TAIL, redact=redact_prefix, not_after="-"),
    ]
    return switched_on(table, actions)
