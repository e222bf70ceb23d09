"""A run's items as files: CSV rows (one per item, flat) or NDJSON lines.

Shared by the API's export and the CLI's ``--out``, so both write the same columns.
Cells are safe to open in a spreadsheet as the hit export's are (web/api/export.py):
report and capture values come from outside, and a leading ``=`` would be a formula.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

CSV_COLUMNS = (
    "kind", "click_id", "event", "report_line", "report_event", "report_amount",
    "report_currency", "report_time", "hit_ids", "captured_endpoint_id",
    "captured_received_at", "captured_event", "captured_amount", "captured_currency",
    "unparsed_reason", "unparsed_text",
)  # fmt: skip
# The formats ItemLines writes, and the media type each is served as.
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_CHARS = 64 * 1024


def csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_row(item: dict[str, Any]) -> list[str]:
    """An item flat: its report row's values, its first capture's, and for an
    unparsed row the reader's reason and the line's text."""
    report = item["report"] or {}
    captured = item["captured"][0] if item["captured"] else {}
    unparsed = item["kind"] == "unparsed_row"
    flat = {
        "kind": item["kind"],
        "click_id": item["click_id"],
        "event": item["event"],
        "report_line": report.get("line"),
        "report_event": None if unparsed else report.get("event"),
        "report_amount": report.get("amount"),
        "report_currency": report.get("currency"),
        "report_time": report.get("time"),
        "hit_ids": " ".join(item["hit_ids"]),
        "captured_endpoint_id": captured.get("endpoint_id"),
        "captured_received_at": captured.get("received_at"),
        "captured_event": captured.get("event"),
        "captured_amount": captured.get("amount"),
        "captured_currency": captured.get("currency"),
        "unparsed_reason": report.get("reason") if unparsed else None,
        "unparsed_text": report.get("text") if unparsed else None,
    }
    return [csv_cell(flat[c]) for c in CSV_COLUMNS]


class ItemLines:
    """Formats items as ``fmt`` ("csv" or "ndjson") and hands the text out in chunks."""

    def __init__(self, fmt: str) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer) if fmt == "csv" else None
        if self.writer is not None:
            self.writer.writerow(CSV_COLUMNS)

    def add(self, item: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.writerow(csv_row(item))
        else:
            self.buffer.write(json.dumps(item, ensure_ascii=False) + "\n")

    def take(self, at_least: int = CHUNK_CHARS) -> str | None:
        if self.buffer.tell() < at_least:
            return None
        data = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return data
