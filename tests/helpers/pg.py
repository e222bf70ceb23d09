"""The test database: a real PostgreSQL, embedded by default or DATABASE_URL's server."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from monitor.storage.db import connect
from monitor.storage.embedded import EmbeddedPostgres
from monitor.storage.migrate import migrate
from monitor.storage.partitions import ensure_partitions


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class ScratchDatabase:
    """A throw-away database on a real server, migrated, dropped at the end."""

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.embedded: EmbeddedPostgres | None = None
        self.server_url = os.environ.get("DATABASE_URL") or ""
        self.name = f"pbm_test_{secrets.token_hex(4)}"
        self.url = ""
        self.scratch: list[str] = []

    def start(self) -> str:
        if not self.server_url:
            self.embedded = EmbeddedPostgres(self.tmp_dir / "pgdata")
            self.embedded.start()
            self.server_url = self.embedded.admin_url
        self.url = with_database(self.server_url, self.name)
        asyncio.run(self._create())
        return self.url

    async def _create(self) -> None:
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await admin.close()
        conn = await connect(self.url)
        try:
            await migrate(conn)
            await ensure_partitions(conn)
        finally:
            await conn.close()

    def stop(self) -> None:
        async def drop() -> None:
            admin = await asyncpg.connect(self.server_url)
            try:
                for name in [self.name, *self.scratch]:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()

        try:
            asyncio.run(drop())
        finally:
            if self.embedded is not None:
                self.embedded.stop()

    def fresh_database_url(self) -> str:
        """An empty (unmigrated) database on the same server, for migrator tests."""
        name = f"pbm_empty_{secrets.token_hex(4)}"

        async def create() -> None:
            admin = await asyncpg.connect(self.server_url)
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()

        asyncio.run(create())
        self.scratch.append(name)
        return with_database(self.server_url, name)
