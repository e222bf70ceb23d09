"""A captured hit: what is stored, and how it is shown as JSON."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.model.verdict import TEST_TRAFFIC, Flag, Verdict

# The states of a hit's row in the forwarding outbox (sql/002_forwarding.sql).
FORWARD_STATES = ("pending", "delivered", "failed", "cancelled")
# What the hit list's forward-state filter takes: a state, or ``none`` (never queued).
FORWARD_STATE_FILTERS = (*FORWARD_STATES, "none")


@dataclass(slots=True)
class Hit:
    """One request received on a capture URL, with its parsed views and flags."""

    id: uuid.UUID
    endpoint_id: int
    received_at: datetime
    method: str
    path: str
    raw_query: bytes
    params: list[tuple[str, str]]
    body_params: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    content_type: str
    body: bytes
    body_size: int
    remote_ip: str | None
    user_agent: str | None
    verdict: Verdict = field(default_factory=lambda: Verdict(flags=[]))
    # The verdict's flags plus capture's own (body_truncated).
    flags: list[Flag] = field(default_factory=list)
    # Settled by the writer against the duplicate ledger.
    duplicate: Flag | None = None
    # Settled by the writer against the click's lifecycle (at most one flag a hit).
    lifecycle: Flag | None = None
    # Set by the writer against its process's recent amounts (storage.amount_outliers).
    outlier: Flag | None = None
    # Set by the writer against the endpoint's known senders (storage.senders).
    sender_flags: list[Flag] = field(default_factory=list)

    @property
    def is_test(self) -> bool:
        """A test or ping postback (flagged test_traffic): no duplicate ledger, stats or
        alert metrics. Read from the flags, so a spooled hit keeps it."""
        return any(flag["flag"] == TEST_TRAFFIC for flag in self.flags)

    def all_flags(self) -> list[Flag]:
        settled = (self.duplicate, self.lifecycle, self.outlier)
        if settled == (None, None, None) and not self.sender_flags:
            return self.flags
        return [*self.flags, *(f for f in settled if f is not None), *self.sender_flags]


def body_json(body: bytes) -> dict[str, str]:
    """The body as text when it is valid UTF-8 without NUL, else as base64."""
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and "\x00" not in decoded:
        return {"body_text": decoded}
    return {"body_base64": base64.b64encode(body).decode("ascii")}


def row_to_json(row: Any, *, with_body: bool = True) -> dict[str, Any]:
    """A hits row (asyncpg Record or mapping) as the API's hit object."""
    doc: dict[str, Any] = {
        "id": str(row["id"]),
        "endpoint_id": row["endpoint_id"],
        "received_at": row["received_at"].isoformat(),
        "method": row["method"],
        "path": row["path"],
        "query_string": row["raw_query"].decode("utf-8", "replace"),
        "params": [list(pair) for pair in row["params"]],
        "body_params": [list(pair) for pair in row["body_params"]],
        "headers": [list(pair) for pair in row["headers"]],
        "content_type": row["content_type"],
        "body_size": row["body_size"],
        "remote_ip": None if row["remote_ip"] is None else str(row["remote_ip"]),
        "user_agent": row["user_agent"],
        "click_id": row["click_id"],
        "event": row["event"],
        "status": row["status"],
        "flags": row["flags"],
    }
    if with_body:
        doc.update(body_json(bytes(row["body"])))
    return doc
