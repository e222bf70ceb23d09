"""The migrator: once per version, safe under concurrent starts, refuses newer schemas."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from monitor.storage.db import connect
from monitor.storage.migrate import Migration, SchemaTooNewError, load_migrations, migrate
from tests.helpers.pg import ScratchDatabase


def test_migrations_are_numbered_files() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    assert migrations[0].version == 1


def test_two_processes_migrate_at_once(test_db: ScratchDatabase, tmp_path: Path) -> None:
    url = test_db.fresh_database_url()
    cmd = [
        sys.executable,
        "-m",
        "monitor",
        "migrate",
        "--database-url",
        url,
        "--data-dir",
        str(tmp_path),
    ]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    stdout = sorted(out.decode() for out, _ in outputs)
    assert stdout[0].startswith("applied migrations")
    assert stdout[1].startswith("database is up to date")

    async def check() -> list[int]:
        conn = await asyncpg.connect(url)
        try:
            return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        finally:
            await conn.close()

    assert asyncio.run(check()) == [m.version for m in load_migrations()]


async def test_refuses_a_newer_schema(test_db: ScratchDatabase) -> None:
    url = await asyncio.to_thread(test_db.fresh_database_url)
    conn = await connect(url)
    try:
        known = load_migrations()
        await migrate(conn, known)
        assert await migrate(conn, known) == []
        future = [*known, Migration(999, "from_the_future", "SELECT 1")]
        await migrate(conn, future)
        with pytest.raises(SchemaTooNewError, match="newer than this postback-monitor knows"):
            await migrate(conn, known)
    finally:
        await conn.close()


async def test_citus_keys_migrate_a_database_holding_hits(test_db: ScratchDatabase) -> None:
    """sql/015 rewrites the key of a hits table that has rows in a dated partition and
    in the default one, and the forward_attempts index: rows stay, keys change."""
    url = await asyncio.to_thread(test_db.fresh_database_url)
    known = load_migrations()
    conn = await connect(url)
    try:
        await migrate(conn, [m for m in known if m.version < 15])
        await conn.execute("CREATE TABLE hits_p20260101 PARTITION OF hits FOR VALUES FROM "
                           "('2026-01-01') TO ('2026-01-02')")  # fmt: skip
        await conn.execute(
            """
            INSERT INTO hits (id, endpoint_id, received_at, method, path, raw_query, params,
                              headers, body, body_size)
            SELECT gen_random_uuid(), 1 + g % 3, timestamptz '2026-01-01 12:00Z' + g * interval
                   '1 hour', 'GET', '/p/x', ''::bytea, '[]', '[]', ''::bytea, 0
            FROM generate_series(0, 39) AS g"""
        )
        await conn.execute(
            """
            INSERT INTO forward_attempts (endpoint_id, hit_id, kind, attempt, started_at,
                                          method, url)
            SELECT endpoint_id, id, 'forward', 1, received_at, 'GET', 'http://x/' FROM hits"""
        )
        await migrate(conn, known)
        assert await conn.fetchval("SELECT count(*) FROM hits") == 40
        assert await conn.fetchval("SELECT count(*) FROM hits_default") == 28
        assert await conn.fetchval("SELECT count(*) FROM forward_attempts") == 40
        keys = await conn.fetch(
            """
            SELECT c.conrelid::regclass::text AS tbl,
                   array_agg(a.attname::text ORDER BY k.n) AS cols
            FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute a ON a.attnum = k.attnum
            WHERE c.contype = 'p' AND c.conrelid::regclass::text LIKE 'hits%'
              AND a.attrelid = c.conrelid
            GROUP BY 1 ORDER BY 1"""
        )
        assert {r["tbl"]: r["cols"] for r in keys} == {
            name: ["id", "received_at", "endpoint_id"]
            for name in ("hits", "hits_default", "hits_p20260101")
        }
        index = await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = $1",
                                    "forward_attempts_hit")  # fmt: skip
        assert index.endswith("(endpoint_id, hit_id, started_at)")
    finally:
        await conn.close()


async def test_every_unique_key_of_a_distributed_table_holds_the_endpoint(
    test_db: ScratchDatabase,
) -> None:
    """Citus enforces a unique key within one shard only, so each must contain the
    distribution column (docs/scaling.md); this reads the migrated schema's keys."""
    from tests.unit.test_citus_ready import DISTRIBUTED

    url = await asyncio.to_thread(test_db.fresh_database_url)
    conn = await connect(url)
    try:
        await migrate(conn)
        await conn.execute("CREATE TABLE hits_p20260101 PARTITION OF hits FOR VALUES FROM "
                           "('2026-01-01') TO ('2026-01-02')")  # fmt: skip
        rows = await conn.fetch(
            """
            SELECT t.relname AS tbl, x.relname AS idx,
                   'endpoint_id' = ANY(array_agg(a.attname::text)) AS has_endpoint
            FROM pg_index i
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_class x ON x.oid = i.indexrelid
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey)
            WHERE i.indisunique AND (t.relname = ANY($1::text[]) OR t.relname LIKE 'hits_p%')
            GROUP BY 1, 2""",
            list(DISTRIBUTED),
        )
        checked = {r["tbl"] for r in rows}
        assert checked >= {"hits", "hits_default", "hits_p20260101", "click_keys"}, checked
        assert [r["idx"] for r in rows if not r["has_endpoint"]] == []
    finally:
        await conn.close()
