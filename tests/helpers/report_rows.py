"""Report rows made in the test, shaped as monitor.rules.report yields them, for the
reconciliation engine's tests that need no CSV (the reader has its own tests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    click_id: str
    event: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Unparsed:
    line: int
    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class Layout:
    columns: dict[str, str]
    delimiter: str = ","
    header: tuple[str, ...] = field(default=())
    detected_format: str | None = None


def rows_opener(columns: Sequence[str], rows: Sequence[Row | Unparsed]) -> Any:
    """An ``open_report`` that reads the whole file (so progress reaches its end) and
    yields ``rows``, with a layout of ``columns`` (fields mapped to themselves)."""

    def open_report(source: BinaryIO, **_: Any) -> tuple[Layout, Iterator[Row | Unparsed]]:
        layout = Layout(columns={c: c for c in columns}, header=tuple(columns))

        def rows_then_end() -> Iterator[Row | Unparsed]:
            yield from rows
            source.read()

        return layout, rows_then_end()

    return open_report


def report_file(directory: Path, size: int = 100) -> Path:
    """A stand-in report file of ``size`` bytes (the run deletes it when it ends)."""
    path = directory / "report.csv"
    path.write_bytes(b"x" * size)
    return path
