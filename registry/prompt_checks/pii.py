"""PII detectors of the safety check: e-mail addresses, payment card numbers (Luhn-valid), phone numbers. No Django."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PII_KINDS = ("email", "phone", "card")


@dataclass(frozen=True)
class PiiFinding:
    kind: str  # email | phone | card
    start: int
    end: int
    masked: str  # never the whole value: results are stored and shown

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
_CARD_RE = re.compile(r"(?<![0-9-])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_PHONE_RES = (
    # North American: (555) 123-4567, 555.123.4567, +1 555 123 4567
    re.compile(r"(?<![\w+])(?:\+?1[ .-]?)?(?:\([0-9]{3}\)[ .-]?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![0-9])"),
    # international: a + and 8 to 15 digits in groups
    re.compile(r"(?<![\w+])\+[0-9]{1,3}(?:[ .-]?\(?[0-9]{1,5}\)?){2,6}(?![0-9])"),
    # national with a trunk 0, in groups: 020 7946 0958, 01 23 45 67 89
    re.compile(r"(?<![\w+])0[0-9]{1,4}(?:[ .-][0-9]{2,4}){2,4}(?![0-9])"),
)


def luhn_valid(number: str) -> bool:
    """The Luhn checksum: from the right, double every second digit (minus 9 above 9); valid when the sum is a multiple of 10."""
    if not number or not all(ch in "0123456789" for ch in number):
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> list[PiiFinding]:
    """E-mail addresses, payment card numbers and phone numbers in `text`, in order.

    Cards: 13 to 19 digits, optionally grouped by single spaces or dashes, not
    starting with 0, valid under the Luhn checksum (invalid ones are not cards).
    Phones: the three patterns above (North American, `+` international with 8
    to 15 digits, trunk-0 national with 9 to 12 digits); digits already taken by
    a card are not phones. Dates, years and IP addresses do not match.
    """
    kinds = set(kinds)
    found: list[PiiFinding] = []

    def free(start: int, end: int) -> bool:
        return all(end <= f.start or start >= f.end for f in found)

    if "email" in kinds:
        for m in _EMAIL_RE.finditer(text):
            local, _, domain = m.group().partition("@")
            found.append(PiiFinding("email", m.start(), m.end(), f"{local[0]}***@{domain}"))
    if "card" in kinds:
        for m in _CARD_RE.finditer(text):
            digits = re.sub(r"[ -]", "", m.group())
            if digits[0] != "0" and luhn_valid(digits) and free(m.start(), m.end()):
                found.append(PiiFinding("card", m.start(), m.end(), f"**** {digits[-4:]}"))
    if "phone" in kinds:
        for pattern, (low, high) in zip(_PHONE_RES, ((10, 11), (8, 15), (9, 12)), strict=True):
            for m in pattern.finditer(text):
                digits = re.sub(r"[^0-9]", "", m.group())
                if low <= len(digits) <= high and free(m.start(), m.end()):
                    found.append(PiiFinding("phone", m.start(), m.end(), f"***{digits[-4:]}"))
    return sorted(found, key=lambda f: f.start)
