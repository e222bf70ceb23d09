"""The bytes of an uploaded report as text: its encoding, separator, header and first rows.

Reading the head (``HEAD_BYTES``) decides everything about the file before a row is
read, so a file that cannot be a report is refused at once, naming what is wrong:
empty; a ZIP (an .xlsx workbook); binary (NUL bytes) or not UTF-8/UTF-16 text; a first
line over ``MAX_HEADER_CHARS``; more than ``MAX_COLUMNS`` columns. UTF-8 with or
without BOM and UTF-16 with BOM (Excel's "Unicode text") are read.

The separator is sniffed from the head's rows read as csv (so quoted fields holding
another separator do not mislead it): of ",", ";" and tab, the one that gives the
header more than one column and the most rows as wide as the header, then the widest
header. Blank lines before the header are skipped; trailing empty columns are not
counted.

``bounded_lines`` feeds the row reader lines of at most ``MAX_LINE_CHARS``: a longer
line is read past in pieces, never held, and stands as ``OVERLONG``.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from monitor.model.errors import InvalidInput

HEAD_BYTES = 256 * 1024
MAX_HEADER_CHARS = 64 * 1024
MAX_COLUMNS = 1000
MAX_LINE_CHARS = 64 * 1024
SAMPLE_ROWS = 50
DELIMITERS = (",", ";", "\t")
# Stands for an over-long line in the line stream: csv yields it as a one-field row.
OVERLONG = "\ufffe\ufffeoverlong\ufffe\ufffe"
_LINE_END = re.compile(r"[\r\n]")


@dataclass(frozen=True, slots=True)
class Head:
    """What the head of a report says: where the file starts, how to decode and split
    it, its header (trimmed, trailing empty names dropped) and up to ``SAMPLE_ROWS``
    rows after it."""

    start: int
    encoding: str
    delimiter: str
    header: tuple[str, ...]
    sample: list[list[str]]


def read_head(source: BinaryIO) -> Head:
    """The head of the report; InvalidInput("invalid_report") when it cannot be one."""
    start = source.tell()
    head = source.read(HEAD_BYTES)
    whole = len(head) < HEAD_BYTES
    encoding = _encoding(head)
    text = _head_text(head, encoding, whole)
    delimiter, rows = _sniff(text)
    header = _header(rows, text)
    return Head(start, encoding, delimiter, header, rows[1 : SAMPLE_ROWS + 1])


def _encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if head.startswith(b"PK\x03\x04"):
        raise InvalidInput(
            "invalid_report",
            "The report is an Excel workbook or another ZIP file, not a text CSV file; "
            "export or save it as CSV.",
        )
    if b"\x00" in head:
        raise _not_text()
    return "utf-8"


def _not_text() -> InvalidInput:
    return InvalidInput(
        "invalid_report",
        "The report is not a text CSV file (it is not UTF-8 or UTF-16 text); "
        "export or save it as CSV UTF-8.",
    )


def _head_text(head: bytes, encoding: str, whole: bool) -> str:
    """The head decoded, cut to whole lines unless it is the whole file."""
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=whole)
    except UnicodeDecodeError:
        raise _not_text() from None
    if "\x00" in text:
        raise _not_text()
    if not text.strip():
        raise InvalidInput("invalid_report", "The report is empty.")
    if not whole:
        end = max(text.rfind("\n"), text.rfind("\r"))
        if end < 0:
            raise _header_too_long()
        text = text[: end + 1]
    return text


def _header_too_long() -> InvalidInput:
    return InvalidInput(
        "invalid_report",
        f"The report's first line is longer than {MAX_HEADER_CHARS} characters; "
        "it does not look like a CSV header.",
    )


def _sniff(text: str) -> tuple[str, list[list[str]]]:
    """The separator that gives the header more than one column and the most rows
    as wide as the header, with the head's non-blank rows read with it."""
    best: tuple[tuple[bool, int, int], str, list[list[str]]] | None = None
    for delimiter in DELIMITERS:
        rows = _sample_rows(text, delimiter)
        width = _width(rows[0]) if rows else 0
        alike = sum(1 for row in rows[1:] if _width(row) == width)
        score = (width > 1, alike, width)
        if best is None or score > best[0]:
            best = (score, delimiter, rows)
    assert best is not None
    return best[1], best[2]


def _sample_rows(text: str, delimiter: str) -> list[list[str]]:
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            if row and any(field.strip() for field in row):
                rows.append(row)
                if len(rows) > SAMPLE_ROWS:
                    break
    except csv.Error:
        pass  # the sample ends at a malformed row; the rows themselves report it
    return rows


def _width(row: Sequence[str]) -> int:
    """Columns up to the last non-empty one: trailing empty columns do not count."""
    width = len(row)
    while width and not row[width - 1].strip():
        width -= 1
    return width


def _header(rows: list[list[str]], text: str) -> tuple[str, ...]:
    if not rows:
        raise InvalidInput("invalid_report", "The report is empty.")
    first_line = _LINE_END.split(text.lstrip("\r\n"), maxsplit=1)[0]
    if len(first_line) > MAX_HEADER_CHARS:
        raise _header_too_long()
    header = tuple(name.strip() for name in rows[0][: _width(rows[0])])
    if len(header) > MAX_COLUMNS:
        raise InvalidInput(
            "invalid_report",
            f"The report's header has {len(header)} columns, more than {MAX_COLUMNS}; "
            "it does not look like a conversion report.",
        )
    return header


def bounded_lines(readline: Callable[[int], str]) -> Iterator[str]:
    """The file's lines, each at most MAX_LINE_CHARS; a longer line is read past in
    pieces and stands as ``OVERLONG``, so memory stays bounded whatever the file."""
    limit = MAX_LINE_CHARS
    while line := readline(limit):
        if len(line) < limit or line[-1] in "\r\n":
            yield line
            continue
        while (rest := readline(limit)) and len(rest) == limit and rest[-1] not in "\r\n":
            pass
        yield OVERLONG + "\n"
