"""A click's status lifecycle: what it has seen so far, and what a new status means.

The database keeps one ``ClickState`` per (endpoint, click id) and the writer folds
each batch's statuses into it in arrival order (``storage/lifecycle.py``); the
decision itself is here, pure, so it is tested as a table without a server.

The order a click's statuses may move in (``RANK``): lead → pending → sale =
approved. Moving to a lower rank is ``status_regression`` (approved → pending, sale
→ lead). rebill is a conversion but has no rank (a rebill after a sale is normal);
rejected and reversal end a conversion rather than rank it; test statuses never
reach this module.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from monitor.model.verdict import Flag, Verdict, clip, make_flag

RANK = {"lead": 1, "pending": 2, "sale": 3, "approved": 3}
CONVERSIONS = frozenset({"lead", "sale", "approved", "pending", "rebill"})
REVERSALS = frozenset({"rejected", "reversal"})
PAID = frozenset({"sale", "approved"})
# The flags this module raises (the writer adds them to the hit).
LIFECYCLE_FLAGS = ("orphan_reversal", "conversion_after_reversal", "status_regression")


@dataclass(frozen=True, slots=True)
class ClickState:
    """What one click id has seen on an endpoint (a row of click_lifecycle)."""

    # The last status that has a rank (lead, pending, sale, approved), and its hit.
    last_status: str | None = None
    last_hit_id: uuid.UUID | None = None
    # A conversion (lead, sale, approved, pending or rebill) was seen.
    converted: bool = False
    # The first reversal or rejection, if any.
    reversed_hit_id: uuid.UUID | None = None


def step(state: ClickState, status: str, hit_id: uuid.UUID) -> tuple[ClickState, str | None]:
    """The state after ``status`` arrives, and the flag it raises (or None).

    At most one flag per status: orphan_reversal concerns rejected and reversal,
    conversion_after_reversal sale and approved (top rank, so never a regression),
    status_regression the other ranked statuses."""
    flag = None
    if status in REVERSALS:
        if not state.converted:
            flag = "orphan_reversal"
        if state.reversed_hit_id is None:
            state = ClickState(state.last_status, state.last_hit_id, state.converted, hit_id)
        return state, flag
    if status in PAID and state.reversed_hit_id is not None:
        flag = "conversion_after_reversal"
    rank = RANK.get(status)
    if rank is not None and state.last_status is not None and rank < RANK[state.last_status]:
        flag = "status_regression"
    if rank is not None:
        return ClickState(status, hit_id, True, state.reversed_hit_id), flag
    return ClickState(state.last_status, state.last_hit_id, True, state.reversed_hit_id), flag


def replay(statuses: list[tuple[str, uuid.UUID]]) -> ClickState:
    """The state a click's statuses leave, in order: what remains once a hit is
    deleted is rebuilt from the hits still stored."""
    state = ClickState()
    for status, hit_id in statuses:
        if status in CONVERSIONS or status in REVERSALS:
            state, _ = step(state, status, hit_id)
    return state


def lifecycle_flag(name: str, verdict: Verdict, before: ClickState) -> Flag:
    """The flag ``step`` named, as stored on the hit, in words."""
    click = f'"{clip(verdict.click_id or "")}"'
    status = verdict.status or ""
    sent = f"{verdict.status_param}={clip(verdict.status_value or '')}"
    if name == "orphan_reversal":
        message = (
            f"Click id {click} was {_past(status)} ({sent}) with no earlier conversion on "
            "this endpoint: the postback of the conversion itself may have been lost."
        )
        return make_flag(name, verdict.status_param, verdict.status_value, message, status=status)
    if name == "conversion_after_reversal":
        message = (
            f"Click id {click} got status {status} ({sent}) after it was reversed or "
            f"rejected by hit {before.reversed_hit_id}."
        )
        return make_flag(
            name, verdict.status_param, verdict.status_value, message,
            status=status, reversed_hit_id=str(before.reversed_hit_id),
        )  # fmt: skip
    message = (
        f"Click id {click} moved back from {before.last_status} (hit {before.last_hit_id}) "
        f"to {status} ({sent})."
    )
    return make_flag(
        name, verdict.status_param, verdict.status_value, message,
        status=status, previous_status=before.last_status,
        previous_hit_id=str(before.last_hit_id),
    )  # fmt: skip


def _past(status: str) -> str:
    return "reversed" if status == "reversal" else "rejected"
