"""What each index and jsonb column of ``hits``, and the ledger's insert, cost per hit.

    python bench/ingest.py [--batches 40] [--batch 50] [--rounds 5]

The writer's COPY of realistic hits (six query params, nine headers, a flag on one
in twenty) into scratch copies of ``hits`` that differ in one thing each, in an
embedded PostgreSQL (or DATABASE_URL's server), every batch its own committed
transaction as the writer does (the COPY timed, not the commit's flush, which
costs every variant the same); then the ledger's insert as the writer makes it
(``ON CONFLICT DO NOTHING``, a speculative insertion per key) against a lookup of
the batch's keys followed by a plain insert of the new ones. Variants are
interleaved round by round on one connection, so a noisy machine slows all of
them alike; printed: median µs per hit for each and its difference to the table
as it is. Compare variants, not machines.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.storage.db import connect  # noqa: E402
from monitor.storage.hit_rows import COPY_COLUMNS, copy_record  # noqa: E402
from tests.helpers.hits import judged_hit  # noqa: E402
from tests.helpers.pg import ScratchDatabase  # noqa: E402

INDEXES = {
    "newest": "(endpoint_id, received_at DESC, id DESC)",
    "flagged": "(endpoint_id, received_at DESC, id DESC) WHERE flagged",
    "click": "(endpoint_id, click_id) WHERE click_id IS NOT NULL",
}
JSON_COLUMNS = ("params", "body_params", "headers")
# name: (indexes left out, columns stored as json rather than jsonb)
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "as it is": ((), ()),
    "no newest index": (("newest",), ()),
    "no flagged index": (("flagged",), ()),
    "no click index": (("click",), ()),
    "params+headers json": ((), JSON_COLUMNS),
    "PK only": (tuple(INDEXES), ()),
}
HEADERS = [
    ("Host", "pbm.example"), ("User-Agent", "Keitaro/9.13"), ("Accept", "*/*"),
    ("Accept-Encoding", "gzip"), ("X-Forwarded-For", "198.51.100.7"),
    ("X-Forwarded-Proto", "https"), ("X-Real-Ip", "198.51.100.7"),
    ("Connection", "keep-alive"), ("X-Request-Id", "5f0c2d9e6b"),
]  # fmt: skip

LEDGER_ON_CONFLICT = """
INSERT INTO {table} (endpoint_id, click_id, event, first_hit_id, first_seen_at)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[])
ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING RETURNING click_id"""
LEDGER_LOOKUP = """
SELECT click_id FROM {table} WHERE endpoint_id = $1 AND click_id = ANY($2::text[])
    AND event = 'sale'"""
LEDGER_PLAIN = """
INSERT INTO {table} (endpoint_id, click_id, event, first_hit_id, first_seen_at)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[])
ORDER BY 1, 2, 3"""


def make_batches(batches: int, batch: int, offset: int) -> list[list[tuple[object, ...]]]:
    start = datetime.now(UTC) - timedelta(hours=1)
    made = []
    for b in range(batches):
        rows = []
        for i in range(batch):
            n = offset + b * batch + i
            query = (
                f"click_id=c{n}-{n * 7919 % 100003}&event=sale&payout=1.50&currency=USD"
                f"&sub1=campaign42&txid=t{n}" + ("&sub2={clickid}" if n % 20 == 0 else "")
            )
            hit = judged_hit(1, {"event_param": "event"}, query, start + timedelta(0, 0, n))
            hit.headers = HEADERS
            hit.remote_ip = "198.51.100.7"
            hit.user_agent = "Keitaro/9.13"
            rows.append(copy_record(hit))
        made.append(rows)
    return made


async def create_variants(conn: asyncpg.Connection) -> None:
    for number, (name, (left_out, as_json)) in enumerate(VARIANTS.items()):
        table = f"hits_v{number}"
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute(f"CREATE TABLE {table} (LIKE hits INCLUDING DEFAULTS)")
        await conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id, received_at)")
        for index, definition in INDEXES.items():
            if index not in left_out:
                await conn.execute(f"CREATE INDEX ON {table} {definition}")
        for column in as_json:
            await conn.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT")
            await conn.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE json USING {column}::json"
            )
        print(f"  {table}: {name}")
    for table in ("ledger_on_conflict", "ledger_plain"):
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute(f"CREATE TABLE {table} (LIKE click_keys INCLUDING ALL)")


async def copy_batches(
    conn: asyncpg.Connection, table: str, batches: list[list[tuple[object, ...]]], as_json: bool
) -> float:
    if as_json:  # the app's codec is for jsonb: hand json its text
        import orjson

        positions = [COPY_COLUMNS.index(c) for c in JSON_COLUMNS]
        batches = [
            [
                tuple(orjson.dumps(v).decode() if i in positions else v for i, v in enumerate(row))
                for row in rows
            ]
            for rows in batches
        ]
    spent = 0.0
    for rows in batches:
        async with conn.transaction():  # committed as the writer does, not timed: the
            started = time.perf_counter()  # flush costs every variant the same
            await conn.copy_records_to_table(table, records=rows, columns=COPY_COLUMNS)
            spent += time.perf_counter() - started
    return spent


async def ledger_batches(
    conn: asyncpg.Connection, table: str, batches: list[list[tuple[object, ...]]], plain: bool
) -> float:
    spent = 0.0
    for rows in batches:
        # Every tenth key was seen before (a retry or a second goal), as on real traffic.
        keys = [(r[1], r[14], "sale", r[0], r[2]) for r in rows]
        for i in range(0, len(keys), 10):
            keys[i] = (keys[i][0], "seen-" + str(i), "sale", keys[i][3], keys[i][4])
        columns = [list(c) for c in zip(*keys, strict=True)]
        async with conn.transaction():
            started = time.perf_counter()
            if plain:
                existing = {
                    r[0]
                    for r in await conn.fetch(
                        LEDGER_LOOKUP.format(table=table), columns[0][0], columns[1]
                    )
                }
                new = [k for k in keys if k[1] not in existing]
                if new:
                    await conn.execute(
                        LEDGER_PLAIN.format(table=table), *[list(c) for c in zip(*new, strict=True)]
                    )
            else:
                await conn.fetch(LEDGER_ON_CONFLICT.format(table=table), *columns)
            spent += time.perf_counter() - started
    return spent


async def run(url: str, args: argparse.Namespace) -> None:
    conn = await connect(url)
    await create_variants(conn)
    per_hit: dict[str, list[float]] = {}
    hits = args.batches * args.batch
    for round_number in range(args.rounds):
        batches = make_batches(args.batches, args.batch, round_number * hits)
        order = list(enumerate(VARIANTS.items()))
        if round_number % 2:
            order.reverse()
        for number, (name, (_, as_json)) in order:
            seconds = await copy_batches(conn, f"hits_v{number}", batches, bool(as_json))
            per_hit.setdefault(name, []).append(seconds / hits * 1e6)
        for table, plain in (("ledger_on_conflict", False), ("ledger_plain", True)):
            seconds = await ledger_batches(conn, table, batches, plain)
            name = "ledger: lookup, then plain insert" if plain else "ledger: ON CONFLICT"
            per_hit.setdefault(name, []).append(seconds / hits * 1e6)
    await conn.close()
    base = statistics.median(per_hit["as it is"])
    ledger_base = statistics.median(per_hit["ledger: ON CONFLICT"])
    print(f"{hits} hits per variant and round in batches of {args.batch}, {args.rounds} rounds:")
    for name, values in per_hit.items():
        median = statistics.median(values)
        against = ledger_base if name.startswith("ledger") else base
        print(f"  {name:<36} {median:7.1f} µs/hit  {median - against:+7.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    db = ScratchDatabase(Path(tempfile.mkdtemp(prefix="pbm-bench-")))
    db.start()
    try:
        asyncio.run(run(db.url, args))
    finally:
        db.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
