"""The duplicate ledger: ``click_keys`` settles which hit of a click id came first.

Each batch inserts its keys in its own transaction, so the answer holds across
batches, processes, machines and restarts. Two batches may be in flight at once;
their ledger steps still run one after the other in arrival order
(``LedgerTurns``), so the first hit of a click id stays the original.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from monitor.model.hit import Hit
from monitor.rules.judge import duplicate_flag


def insert_keys_step(first: int) -> str:
    """The ledger's insert, as a step of a bigger statement (``batch_commit``): its five
    arrays are the parameters from ``$first`` on, and only keys of the endpoints in the
    statement's ``live`` go in. Keys are sorted so concurrent writers lock ledger rows
    in one order (no deadlocks); DO NOTHING leaves existing keys alone, they come
    back from SELECT_KEYS below."""
    p = [f"${first + i}" for i in range(5)]
    return f"""
    INSERT INTO click_keys (endpoint_id, click_id, event, first_hit_id, first_seen_at)
    SELECT * FROM unnest({p[0]}::bigint[], {p[1]}::text[], {p[2]}::text[], {p[3]}::uuid[],
        {p[4]}::timestamptz[]) AS k(endpoint_id, click_id, event, first_hit_id, first_seen_at)
    WHERE k.endpoint_id IN (SELECT id FROM live)
    ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING
    RETURNING endpoint_id, click_id, event"""


# The insert alone, every key's endpoint taken as live.
INSERT_KEYS = "WITH live AS (SELECT unnest($1::bigint[]) AS id)" + insert_keys_step(1)
SELECT_KEYS = """
SELECT k.endpoint_id, k.click_id, k.event, k.first_hit_id, k.first_seen_at
FROM click_keys k
JOIN unnest($1::bigint[], $2::text[], $3::text[]) AS u(endpoint_id, click_id, event)
  USING (endpoint_id, click_id, event)
ORDER BY 1, 2, 3
FOR UPDATE OF k
"""
RESET_KEY = """
UPDATE click_keys SET first_hit_id = $4, first_seen_at = $5
WHERE endpoint_id = $1 AND click_id = $2 AND event = $3
"""

# Deleting hits forgets what they settled, so the ledger never names a hit that is
# gone: a hit's key goes if it was the key's first hit (the PK's prefix finds it),
# and clearing an endpoint forgets all of its keys.
FORGET_HIT_KEY = """
DELETE FROM click_keys WHERE endpoint_id = $1 AND click_id = $2 AND first_hit_id = $3"""
FORGET_ENDPOINT_KEYS = "DELETE FROM click_keys WHERE endpoint_id = $1"

Key = tuple[int, str, str]


class Turn:
    """One batch's place in the ledger order: wait for the one before, then release."""

    __slots__ = ("_before", "_mine")

    def __init__(self, before: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._before = before
        self._mine = mine

    async def wait(self) -> None:
        if self._before is not None and not self._before.done():
            await asyncio.shield(self._before)  # cancelling this batch must not release it

    def done(self) -> None:
        if not self._mine.done():
            self._mine.set_result(None)


class LedgerTurns:
    """Hands out turns in the order batches are written."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    def take(self) -> Turn:
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turn = Turn(self._last, mine)
        self._last = mine
        return turn


@dataclass(slots=True)
class KeyPlan:
    """A batch's ledger keys: the first hit of each, and the hits repeating one."""

    firsts: dict[Key, Hit] = field(default_factory=dict)
    repeats: list[tuple[Hit, Hit]] = field(default_factory=list)

    def columns(self) -> list[list[Any]]:
        """The five arrays of insert_keys_step."""
        keys = list(self.firsts)
        return [
            [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
            [self.firsts[k].id for k in keys], [self.firsts[k].received_at for k in keys],
        ]  # fmt: skip

    def only(self, endpoint_ids: set[int]) -> KeyPlan:
        """The keys of these endpoints (a batch's live ones)."""
        return KeyPlan(
            {k: hit for k, hit in self.firsts.items() if k[0] in endpoint_ids},
            [(hit, first) for hit, first in self.repeats if hit.endpoint_id in endpoint_ids],
        )


def plan_keys(hits: Sequence[Hit]) -> KeyPlan:
    """Within the batch the first hit of a key is its candidate original.

    Test hits (flagged test_traffic) are left out: a test fired with a real click
    id must neither become the original the real conversion then repeats, nor be
    flagged a duplicate of it.
    """
    plan = KeyPlan()
    for hit in hits:
        dedupe_key = hit.verdict.dedupe_key
        if dedupe_key is None or hit.is_test:
            continue
        key = (hit.endpoint_id, dedupe_key[0], dedupe_key[1])
        first = plan.firsts.get(key)
        if first is None:
            plan.firsts[key] = hit
        else:
            plan.repeats.append((hit, first))
    return plan


async def settle_duplicates(conn: asyncpg.Connection, hits: Sequence[Hit]) -> None:
    """Flag every hit whose (endpoint, click id, event) was seen before, in arrival order.

    The ledger step alone; the writer runs it as part of one statement per batch
    (``batch_commit``), then ``settle_keys``.
    """
    plan = plan_keys(hits)
    if plan.firsts:
        rows = await conn.fetch(INSERT_KEYS, *plan.columns())
        await settle_keys(conn, plan, {(r[0], r[1], r[2]) for r in rows})


async def settle_keys(conn: asyncpg.Connection, plan: KeyPlan, inserted: set[Key]) -> None:
    """Flag the duplicates once the batch's new keys (``inserted``) are in the ledger.

    The ledger (inserted in this same transaction) decides against earlier batches,
    other processes and earlier runs; the keys it did not take already had a hit,
    read here. A key whose original is older than the endpoint's dedupe window is
    handed to the new hit, which then counts as an original.
    """
    firsts, repeats = plan.firsts, plan.repeats
    keys = list(firsts)
    existing = [k for k in keys if k not in inserted]
    original_of: dict[Key, object] = {k: firsts[k].id for k in inserted}
    if existing:
        columns = [list(col) for col in zip(*existing, strict=True)]
        for row in await conn.fetch(SELECT_KEYS, *columns):
            key = (row["endpoint_id"], row["click_id"], row["event"])
            hit = firsts[key]
            window_s = hit.verdict.dedupe_window_s
            expired = (
                window_s is not None
                and (hit.received_at - row["first_seen_at"]).total_seconds() > window_s
            )
            if expired:
                await conn.execute(RESET_KEY, *key, hit.id, hit.received_at)
                original_of[key] = hit.id
            elif row["first_hit_id"] == hit.id:
                original_of[key] = hit.id  # this very hit, stored by an earlier replay
            else:
                original_of[key] = row["first_hit_id"]
                hit.duplicate = duplicate_flag(hit.verdict, row["first_hit_id"])
    for hit, first in repeats:
        key = (hit.endpoint_id, *hit.verdict.dedupe_key)  # type: ignore[misc]
        window_s = hit.verdict.dedupe_window_s
        if (
            window_s is not None
            and (hit.received_at - first.received_at).total_seconds() > window_s
        ):
            continue  # same batch, yet outside the window: rare enough to leave as original
        hit.duplicate = duplicate_flag(hit.verdict, original_of[key])  # type: ignore[arg-type]
