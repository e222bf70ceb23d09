"""Connections to PostgreSQL: pool set-up shared by the server, the CLI and the tests."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import structlog

from monitor.config import Config
from monitor.storage.embedded import EmbeddedPostgres, KeepRunning

log = structlog.get_logger(__name__)

EMBEDDED_DIR = "pgdata"
# How long shutdown waits for connections still in use before cutting them.
POOL_CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Database:
    """Where the service's database is, and who keeps it running when it is ours."""

    url: str
    keeper: KeepRunning | None  # the embedded server this process started


@asynccontextmanager
async def database(config: Config, *, keep_running: bool = False) -> AsyncIterator[Database]:
    """The configured DATABASE_URL, or the embedded server in the data directory.

    An embedded server started here is stopped on exit; one already running (a
    `serve` started it) is left running. With ``keep_running`` (a service, not a
    CLI command) the one started here is started again whenever it dies.
    """
    if config.database_url is not None:
        yield Database(config.database_url, None)
        return
    embedded = EmbeddedPostgres(config.data_dir / EMBEDDED_DIR)
    url = await asyncio.to_thread(embedded.start)
    keeper = KeepRunning(embedded) if keep_running and embedded.started_here else None
    if keeper is not None:
        keeper.start()
    try:
        yield Database(url, keeper)
    finally:
        if keeper is not None:
            await asyncio.to_thread(keeper.stop)  # before the stop on purpose below
        await asyncio.to_thread(embedded.stop)


@asynccontextmanager
async def database_url(config: Config) -> AsyncIterator[str]:
    """The database's URL for a command that runs once (migrate, endpoint, hits)."""
    async with database(config) as found:
        yield found.url


JSONB_VERSION = b"\x01"  # jsonb's binary wire format: a version byte, then JSON text


def _encode_jsonb(value: Any) -> bytes:
    # orjson: params, headers and flags of every hit are encoded on the hot path.
    return JSONB_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


# inet's binary wire format: family, prefix bits, is-cidr, address length, address.
_INET_V4 = b"\x02\x20\x00\x04"
_INET_V6 = b"\x03\x80\x00\x10"


def _encode_inet(value: Any) -> bytes:
    # Every hit carries its sender's address as text. asyncpg's own codec goes through
    # ipaddress.ip_address (about 5 µs a hit); inet_pton does the same check in C.
    text = str(value)
    try:
        return _INET_V4 + socket.inet_pton(socket.AF_INET, text)
    except OSError:
        pass
    try:
        return _INET_V6 + socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        # Scoped IPv6 (fe80::1%eth0) and the like: inet keeps no zone, ipaddress drops it.
        packed = ipaddress.ip_address(text).packed
        return (_INET_V4 if len(packed) == 4 else _INET_V6) + packed


def _decode_inet(data: bytes) -> str:
    """Addresses are read back as text, the form every caller shows them in."""
    address = ipaddress.ip_address(data[4:])
    bits = data[1]
    return str(address) if bits == address.max_prefixlen else f"{address}/{bits}"


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb travels as Python objects both ways, inet as text; binary so that COPY can
    carry them."""
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "inet", encoder=_encode_inet, decoder=_decode_inet, schema="pg_catalog", format="binary"
    )


async def create_pool(
    url: str, *, min_size: int = 2, max_size: int = 10, **kwargs: Any
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=init_connection, **kwargs
    )
    assert pool is not None
    return pool


async def close_pool(pool: asyncpg.Pool, timeout_s: float = POOL_CLOSE_TIMEOUT_S) -> None:
    """Close the pool, waiting at most ``timeout_s`` for connections still in use.

    asyncpg's ``close`` waits for every acquired connection to come back, for ever:
    one stuck query or leaked connection would hang shutdown (and a test run; CI saw
    a 75-minute hang in a teardown). Past the bound the pool is terminated (asyncpg
    does that when its close is cancelled): the connections in use are cut, which is
    what a stuck shutdown needed anyway.
    """
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except TimeoutError:
        log.warning("database.pool_terminated", waited_s=timeout_s)


async def connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await init_connection(conn)
    return conn
