"""Personal data: e-mail, phone, credit card (Luhn), IBAN (length and mod-97), US SSN, UK NINO, IPv4.

Each pattern runs only when the scanner's pre-filter allows a match (an `@`, enough digits), so
ordinary prose costs no regex at all. Patterns start with a literal or a small ASCII class (never
a look-behind or `\\d`, which make Python's regex engine try every position slowly); what a
look-behind would say is checked on the character before the match instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmgate.policy.guardrails.base import WORD_CHARS, Finding, RegexDetector, TextFacts, redact_email, redact_generic, redact_tail, switched_on

CARD = re.compile(r"[2-6][0-9]{3}(?:[ -]?[0-9]){9,15}(?![0-9])")
IBAN = re.compile(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,32}")
US_SSN = re.compile(r"[0-8][0-9]{2}-[0-9]{2}-[0-9]{4}(?![0-9-])")
UK_NINO = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?![A-Za-z0-9])")
IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9]|\.[0-9])")
PHONE = re.compile(r"[+(0-9][0-9 ().-]{5,24}[0-9](?![0-9])")  # a candidate; `phone_ok` decides
_PHONE_SHAPE = re.compile(r"(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{2,4}(?:[ .-]?[0-9]{2,4}){1,5}")
_DATE = re.compile(r"[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}|[0-9]{1,2}[-./][0-9]{1,2}[-./][0-9]{2,4}")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+-]{1,64}$")
_EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9_-])")

_DIGIT_CHARS = "0123456789"

# Where a partial match may still be growing at the end of a streamed text.
EMAIL_TAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@[A-Za-z0-9.-]*)?$|@[A-Za-z0-9.-]*$")
NUMBER_TAIL = re.compile(r"[+(0-9][0-9 .()-]*$")
IBAN_TAIL = re.compile(r"[A-Z](?:[A-Z](?:[0-9](?:[0-9][A-Z0-9 ]*)?)?)?$")
NINO_TAIL = re.compile(r"[A-Z][A-Z]?[0-9 ]*[A-D]?$")

# ISO 13616 IBAN lengths by country.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def luhn(s: str) -> bool:
    digits = [ord(c) - 48 for c in s if c in _DIGIT_CHARS]
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


def iban_ok(code: str) -> bool:
    """ISO 13616: the first four characters moved to the end, letters as numbers, mod 97 == 1."""
    if not 15 <= len(code) <= 34 or not code.isalnum():
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def ssn_ok(s: str) -> bool:
    area, group, serial = s.split("-")
    return area not in ("000", "666") and group != "00" and serial != "0000"


def ipv4_ok(s: str) -> bool:
    return all(len(p) == 1 or (p[0] != "0" and int(p) <= 255) for p in s.split("."))


def nino_ok(s: str) -> bool:
    return s[:2] not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ")


def phone_ok(s: str) -> bool:
    digits = sum(c in _DIGIT_CHARS for c in s)
    if not 7 <= digits <= 15 or _DATE.fullmatch(s) or IPV4.fullmatch(s) or not _PHONE_SHAPE.fullmatch(s):
        return False
    # a bare run of digits is more often an id than a phone number: ask for a + ( or separators
    return s[0] in "+(" or any(c in " .-" for c in s)


@dataclass(slots=True)
class IbanDetector(RegexDetector):
    """IBAN candidates cut to their country's length, then checked with mod-97."""

    def find(self, text: str, facts: TextFacts, out: list[Finding]) -> None:
        for m in self.pattern.finditer(text):
            start = m.start()
            if start and text[start - 1] in WORD_CHARS:
                continue
            s = m.group(0)
            code = s.replace(" ", "")
            length = IBAN_LENGTHS.get(code[:2], len(code))
            if len(code) < length or not iban_ok(code[:length]):
                continue
            end, seen = start, 0
            while seen < length:  # the text offset where the country's length ends
                if text[end] != " ":
                    seen += 1
                end += 1
            if end < len(text) and text[end] in WORD_CHARS:
                continue
            out.append(Finding(self.check, start, end, self.action, self.label, self.redact(text[start:end])))


@dataclass(slots=True)
class EmailDetector(RegexDetector):
    """Anchored on each `@`: the local part before it, the domain after it."""

    def find(self, text: str, facts: TextFacts, out: list[Finding]) -> None:
        at = text.find("@")
        while at > 0:
            local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
            domain = _EMAIL_DOMAIN.match(text, at + 1)
            if local is not None and domain is not None:
                start = local.start()
                while text[start] == "." and start < at - 1:
                    start += 1
                s = text[start : domain.end()]
                out.append(Finding(self.check, start, domain.end(), self.action, self.label, self.redact(s)))
                at = text.find("@", domain.end())
            else:
                at = text.find("@", at + 1)


def detectors(actions: dict[str, str]) -> list[RegexDetector]:
    """The PII detectors whose action is not `off`, most specific first (cards before phones)."""
    table: list[RegexDetector] = [
        RegexDetector("pii.credit_card", "", "CREDIT_CARD", CARD, min_digits=13, tail_pattern=NUMBER_TAIL, validate=luhn, redact=redact_tail, not_after="-"),
        IbanDetector("pii.iban", "", "IBAN", IBAN, min_digits=8, tail_pattern=IBAN_TAIL, redact=redact_tail),
        RegexDetector("pii.us_ssn", "", "US_SSN", US_SSN, needles=("-",), min_digits=9, tail_pattern=NUMBER_TAIL, validate=ssn_ok, redact=redact_tail, not_after="-"),
        RegexDetector("pii.uk_nino", "", "UK_NINO", UK_NINO, min_digits=6, tail_pattern=NINO_TAIL, validate=nino_ok, redact=lambda s: redact_tail(s, 1), not_after=""),
        EmailDetector("pii.email", "", "EMAIL", _EMAIL_DOMAIN, needles=("@",), tail_pattern=EMAIL_TAIL, redact=redact_email),
        RegexDetector("pii.phone", "", "PHONE", PHONE, min_digits=7, tail_pattern=NUMBER_TAIL, validate=phone_ok, redact=redact_tail, not_after="+"),
        RegexDetector("pii.ipv4", "", "IPV4", IPV4, needles=(".",), min_digits=4, tail_pattern=NUMBER_TAIL, validate=ipv4_ok, redact=redact_generic, not_after="."),
    ]
    return switched_on(table, actions)
