"""Personal data: e-mail, phone, credit card (Luhn), IBAN (mod-97), US SSN, UK NINO, IPv4.

Each pattern runs only when a cheap fact about the text allows a match (an `@`, enough digits),
so ordinary prose costs a few string scans in C.
"""

from __future__ import annotations

import re

from lmgate.policy.guardrails.base import RegexDetector, TextFacts, redact_email, redact_generic, redact_tail

EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![\w-])")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,5}(?![\w-])")
CARD = re.compile(r"(?<![\d-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
US_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
UK_NINO = re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])")

_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")

# Where a partial match may still be growing at the end of a streamed text.
EMAIL_TAIL = re.compile(r"[\w.%+-]+(?:@[\w.-]*)?$|@[\w.-]*$")
NUMBER_TAIL = re.compile(r"(?:[+(]|\d)[\d .()-]*$")
IBAN_TAIL = re.compile(r"\b[A-Z](?:[A-Z](?:\d(?:\d[A-Z0-9 ]*)?)?)?$")
NINO_TAIL = re.compile(r"\b[A-Z][A-Z]?[\d ]*[A-D]?$")


def luhn(s: str) -> bool:
    digits = [ord(c) - 48 for c in s if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(s: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    code = s.replace(" ", "")
    if not 15 <= len(code) <= 34:
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def phone_ok(s: str) -> bool:
    digits = sum(c.isdigit() for c in s)
    if not 7 <= digits <= 15 or _DATE.fullmatch(s.strip()):
        return False
    # a bare run of digits is more often an id than a phone number: ask for a + ( or separators
    return s[0] in "+(" or any(c in " .-" for c in s.strip())


def _digits(n: int):  # type: ignore[no-untyped-def]
    return lambda f: f.digits >= n


def _has_at(f: TextFacts) -> bool:
    return "@" in f.text


def detectors(actions: dict[str, str]) -> list[RegexDetector]:
    """The PII detectors whose action is not `off`, most specific first (cards before phones)."""
    table = [
        RegexDetector("pii.credit_card", "", "CREDIT_CARD", CARD, _digits(13), NUMBER_TAIL, luhn, redact_tail),
        RegexDetector("pii.iban", "", "IBAN", IBAN, _digits(8), IBAN_TAIL, iban_ok, redact_tail),
        RegexDetector("pii.us_ssn", "", "US_SSN", US_SSN, _digits(9), NUMBER_TAIL, None, redact_tail),
        RegexDetector("pii.uk_nino", "", "UK_NINO", UK_NINO, _digits(6), NINO_TAIL, None, lambda s: redact_tail(s, 1)),
        RegexDetector("pii.email", "", "EMAIL", EMAIL, _has_at, EMAIL_TAIL, None, redact_email),
        RegexDetector("pii.phone", "", "PHONE", PHONE, _digits(7), NUMBER_TAIL, phone_ok, redact_tail),
        RegexDetector("pii.ipv4", "", "IPV4", IPV4, _digits(4), NUMBER_TAIL, None, redact_generic),
    ]
    out = []
    for d in table:
        action = actions.get(d.check.split(".", 1)[1], "off")
        if action != "off":
            d.action = action
            out.append(d)
    return out
