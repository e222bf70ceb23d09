"""Amounts and times as conversion reports write them: what is read, what is refused and why."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from monitor.rules.report_values import (
    BadValue,
    parse_amount,
    parse_currency,
    parse_time,
    slashed_order,
)

DOT_AMOUNTS = [
    ("12.50", "12.50", None),
    ("0", "0", None),
    ("-3", "-3", None),
    ("1,234.50", "1234.50", None),
    ("1,234,567", "1234567", None),
    ("1 234.50", "1234.50", None),
    ("1\u00a0234.50", "1234.50", None),
    ("$12.50", "12.50", None),
    ("-$5", "-5", None),
    ("$-5", "-5", None),
    ("12.50 USD", "12.50", "USD"),
    ("12.50USD", "12.50", "USD"),
    ("usd 12.50", "12.50", "USD"),
    ("€12.50", "12.50", "EUR"),
    ("US$ 7", "7", "USD"),
    ("(12.50)", "-12.50", None),
    ("+4.2", "4.2", None),
]


@pytest.mark.parametrize(("cell", "amount", "currency"), DOT_AMOUNTS)
def test_dot_decimal_amounts(cell: str, amount: str, currency: str | None) -> None:
    assert parse_amount(cell, decimal_comma=False) == (Decimal(amount), currency)


COMMA_AMOUNTS = [
    ("12,50", "12.50", None),
    ("1.234,50", "1234.50", None),
    ("1 234,50", "1234.50", None),
    ("1.234.567", "1234567", None),
    ("€12,50", "12.50", "EUR"),
    ("12,50 €", "12.50", "EUR"),
    ("-0,99 RUB", "-0.99", "RUB"),
    ("12,50 руб.", "12.50", "RUB"),
    ("7", "7", None),
]


@pytest.mark.parametrize(("cell", "amount", "currency"), COMMA_AMOUNTS)
def test_decimal_comma_amounts(cell: str, amount: str, currency: str | None) -> None:
    assert parse_amount(cell, decimal_comma=True) == (Decimal(amount), currency)


@pytest.mark.parametrize(
    "cell",
    ["12,5.0", "NaN", "Infinity", "1e3", "abc", "12.50 XYZ", "12.50 dollars", "--5", "12.",
     "1,23", "1.2.3", "- 5 -", "12.50 USD EUR"],
)  # fmt: skip
def test_dot_mode_refuses_what_is_not_a_number(cell: str) -> None:
    with pytest.raises(BadValue, match="is not a number") as refused:
        parse_amount(cell, decimal_comma=False)
    assert f'"{cell}"' in str(refused.value)


def test_a_decimal_comma_in_dot_mode_hints_at_the_option() -> None:
    with pytest.raises(BadValue, match="decimal_comma"):
        parse_amount("12,50", decimal_comma=False)


@pytest.mark.parametrize("cell", ["12.50", "1,234.50", "12,5,0", "1.23"])
def test_comma_mode_refuses_dot_decimals(cell: str) -> None:
    with pytest.raises(BadValue, match="decimal comma"):
        parse_amount(cell, decimal_comma=True)


def test_a_long_bad_value_is_cut_in_the_reason() -> None:
    with pytest.raises(BadValue) as refused:
        parse_amount("x" * 10_000, decimal_comma=False)
    assert len(str(refused.value)) < 120


@pytest.mark.parametrize(
    ("cell", "code"), [("usd", "USD"), ("EUR", "EUR"), ("€", "EUR"), ("$", "$"), ("btc", "BTC")]
)
def test_currency_cells(cell: str, code: str) -> None:
    assert parse_currency(cell) == code


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


TIMES = [
    ("2026-01-02T03:04:05Z", at(2026, 1, 2, 3, 4, 5)),
    ("2026-01-02 03:04:05", at(2026, 1, 2, 3, 4, 5)),
    ("2026-01-02 03:04", at(2026, 1, 2, 3, 4)),
    ("2026-01-02", at(2026, 1, 2)),
    ("2026-01-02T03:04:05+03:00", at(2026, 1, 2, 0, 4, 5)),
    ("2026-01-02T03:04:05-0500", at(2026, 1, 2, 8, 4, 5)),
    ("2026-01-02 03:04:05.123", at(2026, 1, 2, 3, 4, 5, 123000)),
    ("2013-11-12T13:04:27.5670000", at(2013, 11, 12, 13, 4, 27, 567000)),
    ("2026-01-02 03:04:05 UTC", at(2026, 1, 2, 3, 4, 5)),
    ("2026/01/02 03:04:05", at(2026, 1, 2, 3, 4, 5)),
    ("1767225600", at(2026, 1, 1)),
    ("1767225600.5", at(2026, 1, 1, 0, 0, 0, 500000)),
    ("1767225600000", at(2026, 1, 1)),
    ("1767225600123", at(2026, 1, 1, 0, 0, 0, 123000)),
    ("01/02/2026 03:04:05", at(2026, 1, 2, 3, 4, 5)),
    ("1/15/2026 3:45:12 PM", at(2026, 1, 15, 15, 45, 12)),
    ("1/15/2026 12:05 AM", at(2026, 1, 15, 0, 5)),
    ("12/31/2026", at(2026, 12, 31)),
    ("02.01.2026 03:04:05", at(2026, 1, 2, 3, 4, 5)),
    ("02.01.2026 03:04", at(2026, 1, 2, 3, 4)),
    ("02-01-2026 03:04:05", at(2026, 1, 2, 3, 4, 5)),
]


@pytest.mark.parametrize(("cell", "expected"), TIMES)
def test_times_read_month_first_for_slashes(cell: str, expected: datetime) -> None:
    parsed = parse_time(cell, day_first=False)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_day_first_applies_to_slashed_dates_only() -> None:
    assert parse_time("01/02/2026 10:00", day_first=True) == at(2026, 2, 1, 10)
    assert parse_time("02.01.2026", day_first=False) == at(2026, 1, 2)
    assert parse_time("2026-01-02", day_first=True) == at(2026, 1, 2)


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("yesterday", "is not a date and time"),
        ("2026-13-01", "is not a date and time"),
        ("13/13/2026", "is not a valid date (read month first)"),
        ("1/2/26 10:00", "four-digit year"),
        ("1/15/2026 13:00 PM", "1 to 12"),
        ("12345", "is not a date and time"),
    ],
)
def test_times_refused_say_why(cell: str, reason: str) -> None:
    with pytest.raises(BadValue, match=re.escape(reason)):
        parse_time(cell, day_first=False)


@pytest.mark.parametrize(
    ("cell", "order"),
    [("13/02/2026", True), ("02/13/2026", False), ("01/02/2026", None), ("2026/02/13", None),
     ("13.02.2026", None), ("junk", None)],
)  # fmt: skip
def test_slashed_order_is_evidence_only_when_unambiguous(cell: str, order: bool | None) -> None:
    assert slashed_order(cell) is order
