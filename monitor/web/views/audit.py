"""The audit log page (``/audit``, admins only): who did what and when, each entry's
before/after shown as the keys that changed, older pages by cursor.

Reads the same store and pages the same way as ``GET /api/audit``; the diff is made
here, for reading, while the API hands out both documents whole.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from monitor.storage.audit import DEFAULT_PAGE
from monitor.web.appkeys import AUDIT
from monitor.web.inputs import database_id
from monitor.web.scopes import access_of
from monitor.web.views import render as pages

MAX_VALUE_CHARS = 80
# A page may show at most this many changed keys of one entry (a created endpoint
# with every setting filled); the API has the whole documents.
MAX_CHANGES = 20
# Entries an endpoint's settings page shows (the Audit page has the rest).
RECENT = 5


def add_routes(app: web.Application) -> None:
    app.router.add_get("/audit", audit_page)


def flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (``settings.forward_url``); lists stay values."""
    if not isinstance(doc, dict):
        return {prefix: doc} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def shown(value: Any) -> str:
    text = value if isinstance(value, str) and value else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def changes(before: Any, after: Any) -> list[dict[str, str | None]]:
    """The keys whose values differ, each with its old and new value as short text
    (None where that side has no such key: created, removed)."""
    old, new = flatten(before), flatten(after)
    rows: list[dict[str, str | None]] = []
    for key in sorted(old.keys() | new.keys()):
        if key in old and key in new and old[key] == new[key]:
            continue
        rows.append(
            {
                "key": key,
                "before": shown(old[key]) if key in old else None,
                "after": shown(new[key]) if key in new else None,
            }
        )
    return rows


def rows_of(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries as the page shows them: each with its changed keys (a few at most)."""
    rows = []
    for entry in entries:
        found = changes(entry["before"], entry["after"])
        rows.append(
            {"entry": entry, "changes": found[:MAX_CHANGES], "more": len(found) > MAX_CHANGES}
        )
    return rows


async def recent(request: web.Request, endpoint_id: int) -> list[dict[str, Any]]:
    """An endpoint's last few entries for its settings page; none unless the caller
    may read the audit log (an unrestricted admin), as the page rule says."""
    access = access_of(request)
    if not access.has("admin") or access.endpoint_ids is not None:
        return []
    entries, _ = await request.app[AUDIT].page(limit=RECENT, endpoint_id=endpoint_id)
    return rows_of(entries)


async def audit_page(request: web.Request) -> web.Response:
    cursor = database_id(request.query.get("cursor", ""))
    endpoint = database_id(request.query.get("endpoint_id", ""))
    entries, next_id = await request.app[AUDIT].page(
        limit=DEFAULT_PAGE, before_id=cursor, endpoint_id=endpoint
    )
    rows = rows_of(entries)
    scope = "" if endpoint is None else f"&endpoint_id={endpoint}"
    context = {
        "rows": rows,
        "endpoint_id": endpoint,
        "paged": cursor is not None,
        "newest_url": "/audit" + (f"?endpoint_id={endpoint}" if endpoint else ""),
        "more_url": None if next_id is None else f"/audit?cursor={next_id}{scope}",
        "crumbs": [("Audit log", None)],
    }
    return pages.render(request, "audit.html", context)
