"""Amounts, currencies and times as conversion reports write them.

Each parser takes one trimmed cell and returns the value, or raises ``BadValue``
with the reason a user reads (the field and the value are added by the caller).
A million rows pass through here, so the common forms take a precompiled fast path.

Amounts: "12.50", "-3", "1,234.50" (comma thousands), or with ``decimal_comma``
"12,50", "1.234,50", "1 234,50". Spaces (also no-break spaces) may group thousands
in both. A currency symbol or ISO 4217 code before or after the number is dropped
("$12.50", "12.50 USD", "€12,50", "-$5"), and returned so that a report without a
currency column still says which currency a row is in; only known symbols and ISO
codes are dropped, anything else is not a number. Accounting negatives "(12.50)"
are read as -12.50. Exponents, NaN and Infinity are refused: no export writes them.

Times: ISO 8601 (with or without "T", zone, "Z", fraction of any length),
"YYYY-MM-DD HH:MM[:SS]", "YYYY/MM/DD ...", unix seconds or milliseconds (12 digits
or more is milliseconds), and the exports' local forms "MM/DD/YYYY hh:mm[:ss] [AM|PM]"
and "DD.MM.YYYY HH:MM[:SS]" (also "DD-MM-YYYY"). A date with dots or dashes first is
always day first; a slashed date is month first (US: CAKE, TUNE) unless the reader
is told day first (see ``report.py``: the file's unambiguous dates decide, then the
detected export's convention). Naive times are taken as UTC; every time returned is
aware and in UTC. A trailing " UTC" or " GMT" is read as the zone it names.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from monitor.rules.currencies import ISO_4217_CODES

MAX_SHOWN_CHARS = 80

_PLAIN_DOT_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_PLAIN_COMMA_AMOUNT = re.compile(r"-?[0-9]+(?:,[0-9]+)?")
_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009")
# Symbols that name one currency; "$" and "¥" name several, so they are dropped
# without naming one.
SYMBOL_CURRENCIES: dict[str, str | None] = {
    "$": None, "US$": "USD", "€": "EUR", "£": "GBP", "₽": "RUB", "₴": "UAH", "₹": "INR",
    "₺": "TRY", "₩": "KRW", "₪": "ILS", "₦": "NGN", "₱": "PHP", "₫": "VND", "zł": "PLN",
    "R$": "BRL", "¥": None, "руб": "RUB", "руб.": "RUB", "р.": "RUB",
}  # fmt: skip
_ONE_CHAR_SYMBOLS = frozenset(symbol for symbol in SYMBOL_CURRENCIES if len(symbol) == 1)
_AFFIX = re.compile(
    r"(?P<sign>[-+]?)\s*(?P<pre>[^\s0-9.,+\-()]+)?\s*(?P<num>[-+]?[0-9][0-9., \u00a0\u202f\u2009]*)"
    r"\s*(?P<post>[^\s0-9.,+\-()]+\.?)?"
)
_DOT_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?|[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")
_COMMA_DECIMAL = re.compile(r"[0-9]+(?:,[0-9]+)?|[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]+)?")


class BadValue(ValueError):
    """A cell that cannot be read as its field; the message says why, for a person."""


def shown(value: str) -> str:
    """A cell quoted for a message, cut so that one bad cell cannot make a huge reason."""
    if len(value) > MAX_SHOWN_CHARS:
        value = value[:MAX_SHOWN_CHARS] + "…"
    return f'"{value}"'


def parse_amount(value: str, *, decimal_comma: bool) -> tuple[Decimal, str | None]:
    """(amount, currency named beside it or None); BadValue when it is not a number."""
    plain, symbol = value, None
    if value[0] in _ONE_CHAR_SYMBOLS:  # "$12.50", as US exports write every amount
        plain, symbol = value[1:], value[0]
    if decimal_comma:
        if _PLAIN_COMMA_AMOUNT.fullmatch(plain):
            return Decimal(plain.replace(",", ".")), SYMBOL_CURRENCIES.get(symbol or "")
    elif _PLAIN_DOT_AMOUNT.fullmatch(plain):
        return Decimal(plain), SYMBOL_CURRENCIES.get(symbol or "")
    negative = False
    text = value
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1].strip()
    match = _AFFIX.fullmatch(text)
    if match is None:
        raise BadValue(f"{shown(value)} is not a number")
    currency = None
    for affix in (match["pre"], match["post"]):
        if affix is not None:
            known, code = _affix_currency(affix)
            if not known:
                raise BadValue(f"{shown(value)} is not a number")
            currency = code or currency
    number = match["num"]
    sign = match["sign"]
    if number[0] in "+-":
        if sign:
            raise BadValue(f"{shown(value)} is not a number")
        sign, number = number[0], number[1:]
    number = number.translate(_SPACES)
    if decimal_comma:
        if not _COMMA_DECIMAL.fullmatch(number):
            raise BadValue(f"{shown(value)} is not a number with a decimal comma")
        number = number.replace(".", "").replace(",", ".")
    else:
        if not _DOT_DECIMAL.fullmatch(number):
            hint = " (for a decimal comma, read the report with decimal_comma)"
            raise BadValue(f"{shown(value)} is not a number{hint if ',' in number else ''}")
        number = number.replace(",", "")
    try:
        amount = Decimal(number)
    except InvalidOperation:  # pragma: no cover - the patterns above admit only digits
        raise BadValue(f"{shown(value)} is not a number") from None
    if (sign == "-") != negative:
        amount = -amount
    return amount, currency


def _affix_currency(affix: str) -> tuple[bool, str | None]:
    """Whether an affix is a currency symbol or code, and the ISO code it names if one."""
    if affix in SYMBOL_CURRENCIES:
        return True, SYMBOL_CURRENCIES[affix]
    upper = affix.upper()
    if upper in ISO_4217_CODES:
        return True, upper
    return False, None


def parse_currency(value: str) -> str:
    """A currency cell: ISO code upper-cased, a symbol naming one currency as its code."""
    return SYMBOL_CURRENCIES.get(value) or value.upper()


_UNIX = re.compile(r"[0-9]{9,17}(?:\.[0-9]+)?")
_ISO_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LOCAL = re.compile(
    r"(?P<a>[0-9]{1,4})(?P<sep>[./-])(?P<b>[0-9]{1,2})(?P=sep)(?P<c>[0-9]{1,4})"
    r"(?:[ T]+(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]+))?)?"
    r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?)?"
)
_ZONE_WORD = re.compile(r"\s*(?:UTC|GMT|Z)$", re.IGNORECASE)
_ZONE_WORD_ENDS = frozenset("CTZctz")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND_DIGITS = 12


def slashed_order(value: str) -> bool | None:
    """For a slashed date, True when it can only be day first, False when only month
    first, None when either (or not a slashed date): evidence for a file's convention."""
    match = _LOCAL.match(value)
    if match is None or match["sep"] != "/" or len(match["a"]) == 4:
        return None
    first, second = int(match["a"]), int(match["b"])
    if first > 12 >= second:
        return True
    if second > 12 >= first:
        return False
    return None


def parse_time(value: str, *, day_first: bool) -> datetime:
    """An aware UTC datetime; BadValue when the cell is not a time this reader knows."""
    if _ISO_START.match(value):
        if value[-1] in _ZONE_WORD_ENDS:
            value = _ZONE_WORD.sub("+00:00", value)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadValue(f"{shown(value)} is not a date and time") from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    if _UNIX.fullmatch(value):
        whole = value.partition(".")[0]
        seconds = Decimal(value) / (1000 if len(whole) >= MILLISECOND_DIGITS else 1)
        try:
            return _EPOCH + timedelta(seconds=float(seconds))
        except OverflowError:
            raise BadValue(f"{shown(value)} is out of range as a unix time") from None
    return _parse_local(value, day_first=day_first)


def _parse_local(value: str, *, day_first: bool) -> datetime:
    text = _ZONE_WORD.sub("", value) if value[-1] in _ZONE_WORD_ENDS else value
    match = _LOCAL.fullmatch(text)
    if match is None:
        raise BadValue(f"{shown(value)} is not a date and time")
    a, b, c = match["a"], match["b"], match["c"]
    if len(a) == 4:
        year, month, day = int(a), int(b), int(c)
    elif len(c) == 4:
        first_is_day = day_first or match["sep"] != "/"
        year = int(c)
        day, month = (int(a), int(b)) if first_is_day else (int(b), int(a))
    else:
        raise BadValue(f"{shown(value)} is not a date with a four-digit year")
    hour = int(match["h"] or 0)
    ampm = match["ampm"]
    if ampm is not None:
        if not 1 <= hour <= 12:
            raise BadValue(f"{shown(value)} has an hour that is not 1 to 12 before AM/PM")
        hour = hour % 12 + (12 if ampm[0] in "Pp" else 0)
    fraction = (match["f"] or "")[:6].ljust(6, "0")
    try:
        return datetime(
            year, month, day, hour, int(match["m"] or 0), int(match["s"] or 0),
            int(fraction), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        order = "day first" if day_first or match["sep"] != "/" else "month first"
        raise BadValue(f"{shown(value)} is not a valid date (read {order})") from None
