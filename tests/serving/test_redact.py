from __future__ import annotations

import pytest

from serving.redact import Redactor, luhn_valid

R = Redactor()


@pytest.mark.parametrize(
    "number", ["4111111111111111", "5500005555555559", "378282246310005", "6011111111111117"]
)
def test_luhn_accepts_real_test_card_numbers(number: str) -> None:
    assert luhn_valid(number)


def test_luhn_rejects_a_changed_digit() -> None:
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at jane.doe+x@example.co.uk now", "mail me at [REDACTED:EMAIL] now"),
        ("card 4111 1111 1111 1111 exp 12/29", "card [REDACTED:CARD] exp 12/29"),
        ("card 4111-1111-1111-1111.", "card [REDACTED:CARD]."),
        ("server 192.168.10.254 down", "server [REDACTED:IP] down"),
        ("v6 2001:db8::8a2e:370:7334 ok", "v6 [REDACTED:IP] ok"),
        ("call +1 415-555-0132 today", "call [REDACTED:PHONE] today"),
        ("call (415) 555 0132", "call [REDACTED:PHONE]"),
        ("ring +44 20 7946 0958", "ring [REDACTED:PHONE]"),
    ],
)
def test_redacts(text: str, expected: str) -> None:
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # fails Luhn: not a card
        "timestamp 1763700000000000000",
        "version 1.2.3.4567 and 999.1.1.1",
        "the year 2026 had 365 days",
        "ratio 3:4 and 10:30",
    ],
)
def test_leaves_lookalikes(text: str) -> None:
    assert R.redact(text) == text


def test_custom_patterns() -> None:
    redactor = Redactor.with_patterns([r"EMP-\d{6}"])
    assert (
        redactor.redact("badge EMP-123456, mail a@b.io")
        == "badge [REDACTED:CUSTOM], mail [REDACTED:EMAIL]"
    )


def test_bad_custom_pattern_fails_at_configuration() -> None:
    import re

    with pytest.raises(re.error):
        Redactor.with_patterns(["(unclosed"])


@pytest.mark.parametrize(
    "address",
    [
        "::1",
        "fe80::1ff:fe23:4567:890a",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "::ffff:192.0.2.128",
    ],
)
def test_ipv6_forms(address: str) -> None:
    assert R.redact(f"from {address} today") == "from [REDACTED:IP] today"
