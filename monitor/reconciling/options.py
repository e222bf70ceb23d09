"""What a reconciliation run is asked to do, read from the API's ``options`` JSON.

The CLI builds the same ``RunOptions`` from its flags, so both check the same things.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from monitor.model.errors import InvalidInput

# The report fields a column mapping may name (monitor.rules.report.REPORT_FIELDS).
COLUMN_FIELDS = ("click_id", "event", "amount", "currency", "time")
OPTION_FIELDS = ("endpoint_ids", "columns", "since", "until", "amount_tolerance", "decimal_comma")
DEFAULT_TOLERANCE = Decimal("0.01")
MAX_ENDPOINTS = 100
MAX_COLUMN_NAME = 200


@dataclass(frozen=True, slots=True)
class RunOptions:
    endpoint_ids: list[int]
    columns: dict[str, str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    amount_tolerance: Decimal = DEFAULT_TOLERANCE
    decimal_comma: bool = False

    def as_json(self) -> dict[str, Any]:
        """As stored on the run (``options``): what was asked, before defaults."""
        return {
            "endpoint_ids": self.endpoint_ids,
            "columns": self.columns,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "amount_tolerance": str(self.amount_tolerance),
            "decimal_comma": self.decimal_comma,
        }


def parse_options(doc: Any) -> RunOptions:
    """The ``options`` object checked; InvalidInput names the first bad field."""
    if not isinstance(doc, dict):
        raise InvalidInput("invalid_options", "options: a JSON object")
    unknown = sorted(set(doc) - set(OPTION_FIELDS))
    if unknown:
        raise InvalidInput("invalid_options", f"options: unknown field(s) {', '.join(unknown)}")
    ids = doc.get("endpoint_ids")
    if (
        not isinstance(ids, list)
        or not ids
        or len(ids) > MAX_ENDPOINTS
        or not all(type(i) is int and 1 <= i < 2**63 for i in ids)
    ):
        raise InvalidInput(
            "invalid_options",
            f"endpoint_ids: a list of 1 to {MAX_ENDPOINTS} endpoint ids (positive integers)",
        )
    options = RunOptions(
        endpoint_ids=list(dict.fromkeys(ids)),
        columns=parse_columns(doc.get("columns")),
        since=parse_time(doc.get("since"), "since"),
        until=parse_time(doc.get("until"), "until"),
        amount_tolerance=parse_tolerance(doc.get("amount_tolerance", DEFAULT_TOLERANCE)),
        decimal_comma=parse_bool(doc.get("decimal_comma", False), "decimal_comma"),
    )
    check_window(options)
    return options


def parse_columns(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(v, str) and 0 < len(v) <= MAX_COLUMN_NAME for v in value.values()
    ):
        raise InvalidInput("invalid_options", "columns: an object of field → column name")
    unknown = sorted(set(value) - set(COLUMN_FIELDS))
    if unknown:
        raise InvalidInput(
            "invalid_options",
            f"columns: unknown field(s) {', '.join(unknown)[:200]} "
            f"(known: {', '.join(COLUMN_FIELDS)})",
        )
    return dict(value) or None


def parse_time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InvalidInput("invalid_options", f"{name}: an RFC 3339 time with a UTC offset")
    return when


def parse_tolerance(value: Any) -> Decimal:
    try:
        ok = not isinstance(value, bool) and isinstance(value, int | float | str | Decimal)
        tolerance = Decimal(str(value)) if ok else None
    except InvalidOperation:
        tolerance = None
    if (
        tolerance is None
        or not tolerance.is_finite()
        or tolerance < 0
        or (isinstance(value, float) and not math.isfinite(value))
        or tolerance > Decimal(10) ** 12
    ):
        raise InvalidInput("invalid_options", "amount_tolerance: a number from 0 up")
    return tolerance


def parse_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("invalid_options", f"{name}: true or false")
    return value


def check_window(options: RunOptions) -> None:
    if options.since and options.until and options.since >= options.until:
        raise InvalidInput("invalid_options", "since: must be before until")
