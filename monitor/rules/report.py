"""A network's conversion report (a CSV export) read as rows to reconcile with captured hits.

``open_report`` reads the head of the file at once, so that a file that cannot be a
report, or a mapping that does not fit it, is refused before any work (InvalidInput,
"invalid_report" or "invalid_columns"); the rows then stream, a line at a time, so a
million-row report never sits in memory. A row that cannot be read becomes an
``UnparsedRow`` naming the field and the value, never an exception: one bad row must
not hide the thousands around it.

Files as users have them: UTF-8 with or without BOM, or UTF-16 with BOM (Excel's
"Unicode text"); ",", ";" or tab separated, chosen from the head as the separator
that gives the header more than one column and the most rows as wide as the header;
quoted fields with separators, quotes and newlines (``line`` is then the row's first
line); CRLF or LF; blank lines skipped; trailing empty columns tolerated. A report
with only its header has zero rows. Bytes that are not UTF-8 after the head are read
as U+FFFD rather than stopping the report halfway.

Work per row is bounded: a physical line over ``MAX_LINE_CHARS`` is skipped unread
and reported, and a quoted field that runs on over lines stops at csv's field size
limit (128 Ki characters unless the process changed it; it is process-wide, so it is
left alone here).

Dates and amounts: see ``report_values``. A slashed date such as 01/02/2026 is read
the way most of the file's unambiguous dates show (13/02/2026 proves day first), else by
the detected export's convention, else month first (US).
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import BinaryIO

from monitor.model.errors import InvalidInput
from monitor.rules.report_formats import REPORT_FIELDS, detect
from monitor.rules.report_text import MAX_LINE_CHARS, OVERLONG, bounded_lines, read_head
from monitor.rules.report_values import (
    BadValue,
    parse_amount,
    parse_currency,
    parse_time,
    slashed_order,
)

__all__ = ["REPORT_FIELDS", "ReportLayout", "ReportRow", "UnparsedRow", "open_report"]

MAX_ROW_TEXT_CHARS = 500
MAX_CACHED_CURRENCIES = 256
# What exports write for "no value" in an optional column (MySQL's zero date from PHP
# trackers among them): read as empty, not as a bad value. A click id is kept as
# written: a literal "null" click id is a defect the reconciliation should show.
NO_VALUE = frozenset(
    ["-", "—", "n/a", "N/A", "NA", "null", "NULL", "None", "none", "nil",
     "0000-00-00", "0000-00-00 00:00:00"]
)  # fmt: skip
_RUNAWAY_FIELD = "row: a field runs on past {} characters (a quote left open?)"
MAX_LISTED_COLUMNS = 40


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One conversion of the report, its values read."""

    line: int
    click_id: str
    event: str | None
    amount: Decimal | None
    currency: str | None
    time: datetime | None


@dataclass(frozen=True, slots=True)
class UnparsedRow:
    """A row that could not be read: why (field and value), and the row as it was."""

    line: int
    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class ReportLayout:
    """How the report was read: separator, header, the column of each field found, and
    the export the columns were detected from ("generic" for common names; None when
    the caller gave the columns)."""

    delimiter: str
    header: tuple[str, ...]
    columns: dict[str, str]
    detected_format: str | None


def open_report(
    source: BinaryIO, *, columns: Mapping[str, str] | None = None, decimal_comma: bool = False
) -> tuple[ReportLayout, Iterator[ReportRow | UnparsedRow]]:
    """Read the header now (raising InvalidInput for a bad file or mapping) and return
    the rows lazily, streamed: never the whole file in memory."""
    head = read_head(source)
    delimiter, header, sample = head.delimiter, head.header, head.sample
    if columns is not None:
        indexes = _explicit(columns, header, single=len(header) == 1)
        detected_format, day_first = None, None
    else:
        found = detect(header, sample)
        if found is None:
            raise _no_click_id(header)
        indexes, detected_format, day_first = (
            found.indexes,
            found.format.name,
            found.format.day_first,
        )
    if "time" in indexes:
        day_first = _day_first(sample, indexes["time"], default=day_first)
    layout = ReportLayout(
        delimiter, header, {field: header[i] for field, i in indexes.items()}, detected_format
    )
    reader = _RowReader(indexes, delimiter, decimal_comma=decimal_comma, day_first=bool(day_first))
    return layout, reader.rows(source, head.start, head.encoding)


def _listed(header: Sequence[str]) -> str:
    names = ", ".join(header[:MAX_LISTED_COLUMNS])
    more = len(header) - MAX_LISTED_COLUMNS
    return names + (f" (and {more} more)" if more > 0 else "")


def _explicit(columns: Mapping[str, str], header: Sequence[str], *, single: bool) -> dict[str, int]:
    """Header index per field the caller named; InvalidInput naming the wrong one."""
    unknown = [field for field in columns if field not in REPORT_FIELDS]
    if unknown:
        raise InvalidInput(
            "invalid_columns",
            f"columns: {', '.join(map(repr, unknown))} "
            f"{'is not a report field' if len(unknown) == 1 else 'are not report fields'}; "
            f"the fields are: {', '.join(REPORT_FIELDS)}",
        )
    if not isinstance(columns.get("click_id"), str) or not columns["click_id"].strip():
        raise InvalidInput("invalid_columns", "columns.click_id: required")
    by_key: dict[str, int] = {}
    for index, column in enumerate(header):
        by_key.setdefault(column.lower(), index)
    indexes: dict[str, int] = {}
    for field in REPORT_FIELDS:
        name: object = columns.get(field)
        if name is None or (isinstance(name, str) and not name.strip()):
            continue
        if not isinstance(name, str):
            raise InvalidInput("invalid_columns", f"columns.{field}: must be a column name")
        found = by_key.get(name.strip().lower())
        if found is None:
            if single:
                raise _no_delimiter(header)
            raise InvalidInput(
                "invalid_columns",
                f'columns.{field}: "{name}" is not a column of the report; '
                f"its columns are: {_listed(header)}",
            )
        indexes[field] = found
    return indexes


def _no_delimiter(header: Sequence[str]) -> InvalidInput:
    return InvalidInput(
        "invalid_report",
        f'The report\'s header is a single column ("{header[0][:80]}"): no "," ";" or tab '
        "separates its columns.",
    )


def _no_click_id(header: Sequence[str]) -> InvalidInput:
    if len(header) == 1:
        return _no_delimiter(header)
    return InvalidInput(
        "invalid_columns",
        "None of the report's columns is named like a click id, so we could not tell "
        f"which column holds the click id; the columns are: {_listed(header)}; "
        "pass columns.click_id",
    )


def _day_first(sample: Sequence[Sequence[str]], index: int, *, default: bool | None) -> bool:
    """Whether slashed dates are day first: as most of the sample's unambiguous dates
    show, else the export's convention, else month first."""
    day = month = 0
    for row in sample:
        if index < len(row):
            order = slashed_order(row[index].strip())
            day += order is True
            month += order is False
    if day != month:
        return day > month
    return bool(default)


class _RowReader:
    """Turns the csv rows after the header into ReportRow or UnparsedRow."""

    def __init__(
        self, indexes: Mapping[str, int], delimiter: str, *, decimal_comma: bool, day_first: bool
    ) -> None:
        self.indexes = dict(indexes)
        self.delimiter = delimiter
        self.decimal_comma = decimal_comma
        self.day_first = day_first
        self.need = max(indexes.values()) + 1

    def rows(
        self, source: BinaryIO, start: int, encoding: str
    ) -> Iterator[ReportRow | UnparsedRow]:
        source.seek(start)
        text = io.TextIOWrapper(source, encoding=encoding, errors="replace", newline="")
        try:
            yield from self._read(
                csv.reader(bounded_lines(text.readline), delimiter=self.delimiter)
            )
        finally:
            # The caller owns the file: the wrapper must not close it when collected.
            with contextlib.suppress(ValueError):  # the caller closed it already
                text.detach()

    def _read(self, reader: Iterator[list[str]]) -> Iterator[ReportRow | UnparsedRow]:
        header_seen = False
        last = 0
        get = self.indexes.get
        ci, ei, ai, cui, ti = (get(field, -1) for field in REPORT_FIELDS)
        need, cut = self.need, MAX_ROW_TEXT_CHARS
        currencies: dict[str, str] = {}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:  # the one csv raises with newline="": a field over its limit
                first, last = last + 1, reader.line_num  # type: ignore[attr-defined]
                yield UnparsedRow(first, _RUNAWAY_FIELD.format(csv.field_size_limit()), "")
                continue
            first, last = last + 1, reader.line_num  # type: ignore[attr-defined]
            if not header_seen:
                header_seen = bool(row) and any(field.strip() for field in row)
                continue
            if not row:
                continue
            if len(row) < need or not (click_id := row[ci].strip()) or click_id == OVERLONG:
                unparsed = self._short(row, first, need)
                if unparsed is not None:
                    yield unparsed
                continue
            try:
                event = None
                if ei >= 0 and (cell := row[ei].strip()) and cell not in NO_VALUE:
                    event = cell
                amount = currency = time = None
                if ai >= 0 and (cell := row[ai].strip()) and cell not in NO_VALUE:
                    field = "amount"
                    amount, currency = parse_amount(cell, decimal_comma=self.decimal_comma)
                if cui >= 0 and (cell := row[cui].strip()) and cell not in NO_VALUE:
                    currency = currencies.get(cell)
                    if currency is None:
                        currency = parse_currency(cell)
                        if len(currencies) < MAX_CACHED_CURRENCIES:  # a report has a few
                            currencies[cell] = currency
                if ti >= 0 and (cell := row[ti].strip()) and cell not in NO_VALUE:
                    field = "time"
                    time = parse_time(cell, day_first=self.day_first)
            except BadValue as error:
                yield UnparsedRow(first, f"{field}: {error}", self.delimiter.join(row)[:cut])
                continue
            yield ReportRow(first, click_id, event, amount, currency, time)

    def _short(self, row: list[str], line: int, need: int) -> UnparsedRow | None:
        """Why a row without enough columns or without a click id is unread; None for a
        row of empty cells, which a spreadsheet writes for a blank line."""
        if not any(field.strip() for field in row):
            return None
        text = self.delimiter.join(row)[:MAX_ROW_TEXT_CHARS]
        if len(row) == 1 and row[0] == OVERLONG:
            return UnparsedRow(line, f"row: longer than {MAX_LINE_CHARS} characters", "")
        if len(row) < need:
            return UnparsedRow(
                line, f"row: {len(row)} columns, fewer than the {need} the mapping needs", text
            )
        return UnparsedRow(line, "click_id: empty", text)
