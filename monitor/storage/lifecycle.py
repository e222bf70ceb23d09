"""The click lifecycle: ``click_lifecycle`` settles status flags in arrival order.

Like the duplicate ledger (``ledger``), the answer lives in the database so it holds
across batches, processes, machines and restarts, and it is settled in the writer's
batch transaction during the batch's ledger turn, so batches of one process keep
arrival order and batches of different processes take turns on the rows they share.

One statement per batch: the batch's clicks, each summarised in arrival order, are
upserted sorted by key (concurrent writers lock rows in one order: no deadlocks);
the upsert takes each row's lock, waiting for a batch that holds it, and its
``prev_*`` columns hand back the row as every earlier commit left it, against which
the batch's statuses are judged (``rules/lifecycle.py``). Only hits with a real click
id and a status other than test take part (``Verdict.status_tracked``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from monitor.model.hit import Hit
from monitor.rules.lifecycle import ClickState, lifecycle_flag, replay, step


def upsert_step(first: int) -> str:
    """The lifecycle's upsert, as a step of a bigger statement (``batch_commit``): its
    seven arrays are the parameters from ``$first`` on, and only clicks of the endpoints
    in the statement's ``live`` go in."""
    p = [f"${first + i}" for i in range(7)]
    return f"""
    INSERT INTO click_lifecycle AS c (endpoint_id, click_id, last_status, last_hit_id,
        converted, reversed_hit_id, last_seen_at)
    SELECT * FROM unnest({p[0]}::bigint[], {p[1]}::text[], {p[2]}::text[], {p[3]}::uuid[],
        {p[4]}::boolean[], {p[5]}::uuid[], {p[6]}::timestamptz[])
        AS u(endpoint_id, click_id, last_status, last_hit_id, converted, reversed_hit_id,
             last_seen_at)
    WHERE u.endpoint_id IN (SELECT id FROM live)
    ORDER BY 1, 2
    ON CONFLICT (endpoint_id, click_id) DO UPDATE SET
        prev_last_status = c.last_status,
        prev_last_hit_id = c.last_hit_id,
        prev_converted = c.converted,
        prev_reversed_hit_id = c.reversed_hit_id,
        last_status = coalesce(excluded.last_status, c.last_status),
        last_hit_id = CASE WHEN excluded.last_status IS NULL THEN c.last_hit_id
                           ELSE excluded.last_hit_id END,
        converted = c.converted OR excluded.converted,
        reversed_hit_id = coalesce(c.reversed_hit_id, excluded.reversed_hit_id),
        last_seen_at = greatest(c.last_seen_at, excluded.last_seen_at)
    RETURNING endpoint_id, click_id,
        prev_last_status, prev_last_hit_id, prev_converted, prev_reversed_hit_id"""


# The upsert alone, every click's endpoint taken as live.
UPSERT = "WITH live AS (SELECT unnest($1::bigint[]) AS id)" + upsert_step(1)

# Deleting hits forgets what they told the lifecycle, as the ledger forgets keys: a
# deleted hit's click is rebuilt from the hits still stored (in capture order), and
# clearing or deleting an endpoint forgets all of its clicks.
LOCK_CLICK = """
SELECT 1 FROM click_lifecycle WHERE endpoint_id = $1 AND click_id = $2 FOR UPDATE"""
CLICK_STATUSES = """
SELECT status, id FROM hits
WHERE endpoint_id = $1 AND click_id = $2 AND status IS NOT NULL
ORDER BY received_at, id"""
REBUILD_CLICK = """
UPDATE click_lifecycle SET last_status = $3, last_hit_id = $4, converted = $5,
    reversed_hit_id = $6, prev_last_status = NULL, prev_last_hit_id = NULL,
    prev_converted = false, prev_reversed_hit_id = NULL
WHERE endpoint_id = $1 AND click_id = $2"""
FORGET_CLICK = "DELETE FROM click_lifecycle WHERE endpoint_id = $1 AND click_id = $2"
FORGET_ENDPOINT_CLICKS = "DELETE FROM click_lifecycle WHERE endpoint_id = $1"
# Retention: a click none of whose hits is left (its newest is past the horizon).
FORGET_OLD_CLICKS = "DELETE FROM click_lifecycle WHERE endpoint_id = $1 AND last_seen_at < $2"

Key = tuple[int, str]


class ClickPlan:
    """A batch's tracked hits by click, each click summarised in arrival order."""

    __slots__ = ("by_click",)

    def __init__(self, by_click: dict[Key, list[Hit]]) -> None:
        self.by_click = by_click

    def columns(self) -> list[list[object]]:
        """The seven arrays of upsert_step, keys sorted."""
        columns: list[list[object]] = [[] for _ in range(7)]
        for key in sorted(self.by_click):
            clicks = self.by_click[key]
            summary = ClickState()
            for hit in clicks:
                summary, _ = step(summary, hit.verdict.status or "", hit.id)
            row = (
                *key, summary.last_status, summary.last_hit_id, summary.converted,
                summary.reversed_hit_id, max(h.received_at for h in clicks),
            )  # fmt: skip
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        return columns


def plan_clicks(hits: Sequence[Hit]) -> ClickPlan:
    by_click: dict[Key, list[Hit]] = {}
    for hit in hits:
        if hit.verdict.status_tracked:
            by_click.setdefault((hit.endpoint_id, hit.verdict.click_id or ""), []).append(hit)
    return ClickPlan(by_click)


def settle_clicks(plan: ClickPlan, records: Sequence[Sequence[Any]]) -> None:
    """Flag the tracked hits from the upsert's rows: (endpoint_id, click_id, and the
    row's prev_* as every earlier commit left it; a row just inserted has the empty
    state), judged in arrival order."""
    for endpoint_id, click_id, *prev in records:
        before = ClickState(*prev)
        for hit in plan.by_click[(endpoint_id, click_id)]:
            after, flag = step(before, hit.verdict.status or "", hit.id)
            if flag is not None:
                hit.lifecycle = lifecycle_flag(flag, hit.verdict, before)
            before = after


async def settle_lifecycle(conn: asyncpg.Connection, hits: Sequence[Hit]) -> None:
    """Flag every tracked hit whose status breaks its click's lifecycle, in arrival order.

    The lifecycle step alone; the writer runs it as part of one statement per batch
    (``batch_commit``), then ``settle_clicks``.
    """
    plan = plan_clicks(hits)
    if plan.by_click:
        settle_clicks(plan, await conn.fetch(UPSERT, *plan.columns()))


async def forget_hit(conn: asyncpg.Connection, endpoint_id: int, click_id: str) -> None:
    """Rebuild a click's lifecycle from its hits still stored, after one was deleted
    (in the caller's transaction); its row goes when none of them has a status."""
    if await conn.fetchval(LOCK_CLICK, endpoint_id, click_id) is None:
        return
    rows = await conn.fetch(CLICK_STATUSES, endpoint_id, click_id)
    statuses: list[tuple[str, uuid.UUID]] = [(r["status"], r["id"]) for r in rows]
    state = replay(statuses)
    if state == ClickState():
        await conn.execute(FORGET_CLICK, endpoint_id, click_id)
        return
    await conn.execute(
        REBUILD_CLICK, endpoint_id, click_id, state.last_status, state.last_hit_id,
        state.converted, state.reversed_hit_id,
    )  # fmt: skip


async def forget_old(conn: asyncpg.Connection, endpoint_id: int, cutoff: datetime) -> int:
    """Retention: forget clicks last seen before ``cutoff``; how many were forgotten."""
    status = await conn.execute(FORGET_OLD_CLICKS, endpoint_id, cutoff)
    return int(status.split()[-1])
