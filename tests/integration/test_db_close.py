"""Shutdown cannot hang on a connection still in use: the pool is closed with a bound."""

from __future__ import annotations

import time

import asyncpg
import pytest

from monitor.storage.db import close_pool, create_pool


async def test_close_pool_cuts_a_connection_never_released(pg_url: str) -> None:
    pool = await create_pool(pg_url, min_size=1, max_size=2)
    held = await pool.acquire()  # a leaked connection: asyncpg's close waits for it for ever
    began = time.monotonic()
    await close_pool(pool, timeout_s=0.5)
    assert time.monotonic() - began < 5
    assert pool.is_closing()
    with pytest.raises(asyncpg.InterfaceError):  # cut, not waited for
        await held.fetchval("SELECT 1")


async def test_close_pool_is_graceful_when_every_connection_is_back(pg_url: str) -> None:
    pool = await create_pool(pg_url, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
    await close_pool(pool, timeout_s=5)
    assert pool.is_closing()
    with pytest.raises(Exception, match=r"closed|closing"):
        await pool.fetchval("SELECT 1")
