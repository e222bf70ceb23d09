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
