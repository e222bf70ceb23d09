"""How a hit becomes a row of ``hits``: the COPY columns and the record for each.

Kept apart from the writer because other code writes hits the same way (tests,
the benchmark's data shapes) and must not drift from the columns the writer uses.
"""

from __future__ import annotations

import asyncpg

from monitor.model.hit import Hit

COPY_COLUMNS = (
    "id", "endpoint_id", "received_at", "method", "path", "raw_query", "params",
    "body_params", "headers", "content_type", "body", "body_size", "remote_ip",
    "user_agent", "click_id", "event", "flags", "flagged", "amount", "currency", "is_test",
    "status",
)  # fmt: skip
CREATE_REPLAY_TABLE = "CREATE TEMP TABLE hits_replay (LIKE hits INCLUDING DEFAULTS) ON COMMIT DROP"
INSERT_REPLAYED = f"""
INSERT INTO hits ({", ".join(COPY_COLUMNS)})
SELECT {", ".join(COPY_COLUMNS)} FROM hits_replay
ON CONFLICT DO NOTHING
"""


def copy_record(hit: Hit) -> tuple[object, ...]:
    flags = hit.all_flags()
    return (
        hit.id, hit.endpoint_id, hit.received_at, hit.method, hit.path, hit.raw_query,
        hit.params, hit.body_params, hit.headers, hit.content_type, hit.body, hit.body_size,
        hit.remote_ip, hit.user_agent, hit.verdict.click_id, hit.verdict.event, flags,
        bool(flags), hit.verdict.amount, hit.verdict.currency, hit.is_test, hit.verdict.status,
    )  # fmt: skip


async def copy_hits(conn: asyncpg.Connection, hits: list[Hit], *, replay: bool) -> None:
    """COPY the hits into ``hits`` within the caller's transaction.

    A replayed hit may already be stored (a replay cut short after its commit), so
    a replay goes through a scratch table and skips ids already there; new hits
    cannot be there yet and take the direct COPY.
    """
    records = [copy_record(h) for h in hits]
    if replay:
        await conn.execute(CREATE_REPLAY_TABLE)
        await conn.copy_records_to_table("hits_replay", records=records, columns=COPY_COLUMNS)
        await conn.execute(INSERT_REPLAYED)
    else:
        await conn.copy_records_to_table("hits", records=records, columns=COPY_COLUMNS)
