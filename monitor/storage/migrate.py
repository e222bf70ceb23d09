"""A small migrator: applies sql/NNN_name.sql in order, once each, under an advisory lock.

Applied versions are recorded in ``schema_migrations``. Several processes starting at
once serialise on the lock, so each migration runs exactly once. A database that has a
version this code does not know was migrated by a newer release: we refuse to start
rather than write into a schema we do not understand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# Any constant works; it only has to be the same in every process of this service.
MIGRATION_LOCK_KEY = 0x706F_7374_6261_636B  # "postback"
MIGRATION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations ORDER BY version"
RECORD_APPLIED = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer Postback Monitor than this one."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def sql_dir() -> Path:
    """Migrations ship inside the wheel as monitor/sql; a source checkout keeps them in sql/."""
    package = Path(__file__).parent.parent  # monitor/
    packaged = package / "sql"  # the wheel's copy (pyproject force-includes it)
    return packaged if packaged.is_dir() else package.parent / "sql"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file name {path.name!r} is not NNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a version in {directory}")
    if not found:
        raise FileNotFoundError(f"no migrations found in {directory}")
    return found


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply pending migrations; returns the versions applied by this call."""
    migrations = migrations if migrations is not None else load_migrations()
    newest_known = max(m.version for m in migrations)
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(CREATE_LEDGER)
        applied = {row["version"] for row in await conn.fetch(SELECT_APPLIED)}
        too_new = sorted(v for v in applied if v > newest_known)
        if too_new:
            raise SchemaTooNewError(
                f"the database schema is at version {max(too_new)}, newer than this "
                f"postback-monitor knows ({newest_known}); upgrade postback-monitor"
            )
        for migration in migrations:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(RECORD_APPLIED, migration.version, migration.name)
            applied_now.append(migration.version)
            log.info("migrate.applied", version=migration.version, name=migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now
