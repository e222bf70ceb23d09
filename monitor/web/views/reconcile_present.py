"""How the reconciliation pages show a run: its row in the list, its summary in words
and human units, its tabs, and each item's two sides (the report's row, the hits
captured). Pure: the runs and items are the store's JSON, as the API returns them."""

from __future__ import annotations

from typing import Any

from monitor.reconciling.options import COLUMN_FIELDS
from monitor.web.views.present import short_id

# Each item kind: its tab's label, the summary count it has, and what it means.
KINDS: dict[str, tuple[str, str, str]] = {
    "missing_postback": (
        "Missing",
        "missing_postbacks",
        "In the report, never captured: the network counts a conversion you did not get.",
    ),
    "unexpected_postback": (
        "Unexpected",
        "unexpected_postbacks",
        "Captured in the window, not in the report.",
    ),
    "amount_mismatch": (
        "Amount differs",
        "amount_mismatches",
        "Captured, with an amount that differs from the report's by more than the tolerance.",
    ),
    "currency_mismatch": (
        "Currency differs",
        "currency_mismatches",
        "Captured, in another currency than the report's.",
    ),
    "duplicate_postback": (
        "Duplicates",
        "duplicate_postbacks",
        "A conversion posted back more than once: each later capture is one item.",
    ),
    "unparsed_row": (
        "Unparsed rows",
        "unparsed_rows",
        "Report rows that could not be read, with the reason.",
    ),
}
FORMAT_NAMES = {
    "appsflyer": "AppsFlyer raw data export",
    "everflow": "Everflow conversion export",
    "tune": "TUNE (HasOffers) conversion report",
    "cake": "CAKE conversion report",
    "affise": "Affise conversions export",
    "voluum": "Voluum conversions export",
    "keitaro": "Keitaro conversions export",
    "binom": "Binom conversions export",
    "generic": "common column names",
}
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


def format_label(detected: str | None) -> str:
    """What the mapping came from, in words."""
    if detected is None:
        return "the columns you chose"
    return FORMAT_NAMES.get(detected, detected)


def mapping(columns: dict[str, str] | None) -> list[tuple[str, str]]:
    """The run's (field, column) pairs in the fields' order (stored JSON keeps none)."""
    columns = columns or {}
    return [(f, columns[f]) for f in COLUMN_FIELDS if f in columns]


def duration(seconds: float | None) -> str:
    """'350 ms', '42 s', '3 min 5 s', '2 h 10 min', '3 d 4 h'; negative with a minus
    (a capture stamped before the report's conversion time)."""
    if seconds is None:
        return "–"
    sign, value = ("−" if seconds < 0 else ""), abs(seconds)
    if value < 1:
        return f"{sign}{round(value * 1000)} ms"
    if value < 60:
        return f"{sign}{value:.3g} s"
    whole = round(value)
    for unit, size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if whole >= size:
            big, rest = divmod(whole, size)
            part = rest // small_size
            return f"{sign}{big} {unit}" + (f" {part} {small}" if part else "")
    return f"{sign}{whole} s"  # not reached: 60 s and up is a minute


def run_row(run: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """A run in the list: its endpoints by name and its main counts."""
    summary = run["summary"] or {}
    return {
        "run": run,
        "endpoints": endpoint_names(run, names),
        "report_rows": summary.get("report_rows"),
        "matched": summary.get("matched"),
        "missing": summary.get("missing_postbacks"),
        "issues": sum(summary.get(k[1], 0) or 0 for k in KINDS.values()),
    }


def endpoint_names(run: dict[str, Any], names: dict[int, str]) -> list[dict[str, Any]]:
    return [{"id": i, "name": names.get(i)} for i in run["endpoint_ids"]]


def progress(run: dict[str, Any]) -> dict[str, Any]:
    done = run["progress"]
    total = max(done["bytes_total"], 1)
    return {
        "rows": done["rows_read"],
        "value": min(done["bytes_read"], total),
        "max": total,
        "percent": round(100 * min(done["bytes_read"], total) / total),
    }


def tabs(run: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    summary = run["summary"] or {}
    return [
        {
            "kind": k,
            "label": label,
            "count": summary.get(key, 0) or 0,
            "current": k == kind,
            "help": help_text,
        }
        for k, (label, key, help_text) in KINDS.items()
    ]


def first_kind(run: dict[str, Any]) -> str:
    """The tab a result opens on: the first kind with items, else the first."""
    summary = run["summary"] or {}
    return next((k for k, (_, key, _h) in KINDS.items() if summary.get(key)), "missing_postback")


def item_row(item: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """One item: the report's side (None for an unexpected postback) and each capture
    with its endpoint's name and the link to its hit page."""
    captured = [
        {
            **c,
            "endpoint": names.get(c.get("endpoint_id"), f"#{c.get('endpoint_id')}"),
            "short": short_id(str(c.get("hit_id", ""))),
        }
        for c in item["captured"]
    ]
    return {"item": item, "report": item["report"], "captured": captured}
