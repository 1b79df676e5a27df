"""PII redaction, applied to prompt and completion text before it leaves the gateway.

Replaces e-mail addresses, phone numbers, payment card numbers (only digit runs
that pass the Luhn check, so order ids and timestamps survive), IPv4 and IPv6
addresses, and any operator-configured pattern, with ``[REDACTED:<KIND>]``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
# 13 to 19 digits, optionally grouped by single spaces or dashes, not inside a longer number.
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
# Candidate IPv6 tokens (hex, colons, maybe a dotted tail); ``ipaddress`` decides.
IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[\d.]+)?")
# International (+CC …) or North-American-style numbers with separators; 7+ digits.
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}\b"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class Redactor:
    """Built once from configuration; ``redact`` is pure."""

    extra: tuple[tuple[str, re.Pattern[str]], ...] = ()

    @classmethod
    def with_patterns(cls, patterns: Iterable[str]) -> Redactor:
        """Extra patterns, redacted as ``[REDACTED:CUSTOM]``; a bad regex fails here, at start."""
        return cls(tuple(("CUSTOM", re.compile(p)) for p in patterns))

    def redact(self, text: str) -> str:
        text = EMAIL.sub("[REDACTED:EMAIL]", text)
        text = CARD.sub(_card, text)
        text = IPV6_CANDIDATE.sub(_ipv6, text)
        text = IPV4.sub("[REDACTED:IP]", text)
        text = PHONE.sub("[REDACTED:PHONE]", text)
        for kind, pattern in self.extra:
            text = pattern.sub(f"[REDACTED:{kind}]", text)
        return text


def _ipv6(match: re.Match[str]) -> str:
    try:
        ipaddress.IPv6Address(match.group(0))
    except ValueError:
        return match.group(0)
    return "[REDACTED:IP]"


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "[REDACTED:CARD]"
    return match.group(0)
