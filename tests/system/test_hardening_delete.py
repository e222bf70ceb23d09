"""Deleting an endpoint while its hits are in flight: nothing of it outlives the delete.

Hits of the endpoint may be queued in a writer, committing in a batch on another
connection, waiting in a spool, or captured by a process whose cache has not yet
heard of the delete. Whichever commits second, the delete or the batch, must see
the other: the endpoint's hits, ledger rows and outbox rows are gone afterwards,
and hits written later for the deleted endpoint are dropped.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from monitor.model.hit import Hit
from monitor.storage.db import create_pool
from monitor.storage.endpoints import EndpointStore
from monitor.storage.spool import Spool
from monitor.storage.writer import HitWriter
from tests.conftest import ADMIN_TOKEN
from tests.helpers.hits import replay_spool, spool_hit
from tests.helpers.load import run_load
from tests.helpers.server import ServerProcess
from tests.helpers.tracker import Tracker

SENDERS = 20
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Everything the service stores per endpoint; each must be empty after the delete.
ENDPOINT_TABLES = ("hits", "click_keys", "forward_outbox", "forward_attempts")


@pytest.fixture
async def store(pg_url: str, db: asyncpg.Connection) -> AsyncIterator[EndpointStore]:
    pool = await create_pool(pg_url)
    try:
        yield EndpointStore(pool)
    finally:
        await pool.close()


async def rows_left(db: asyncpg.Connection, endpoint_id: int) -> dict[str, int]:
    return {
        table: await db.fetchval(
            f"SELECT count(*) FROM {table} WHERE endpoint_id = $1", endpoint_id
        )
        for table in ENDPOINT_TABLES
    }


async def new_endpoint(db: asyncpg.Connection) -> int:
    endpoint_id: int = await db.fetchval(
        "INSERT INTO endpoints (token, name) VALUES ($1, 'd') RETURNING id", uuid.uuid4().hex
    )
    return endpoint_id


async def test_delete_under_load_leaves_nothing_behind(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection, tracker: Tracker
) -> None:
    # Two worker processes: the one not serving the DELETE hears of it only by NOTIFY.
    server = ServerProcess(
        tmp_path / "data",
        database_url=pg_url,
        extra=["--workers", "2", "--forward-allow", "127.0.0.1"],
    )
    await asyncio.to_thread(server.start)
    try:
        await asyncio.to_thread(server.wait_listening_workers, 2)
        async with aiohttp.ClientSession(headers=AUTH) as api:
            settings = {"forward_url": tracker.url("/pb?c={click_id}")}
            async with api.post(
                f"{server.url}/api/endpoints", json={"name": "doomed", "settings": settings}
            ) as resp:
                assert resp.status == 201
                endpoint = await resp.json()
            stop = asyncio.Event()
            load = asyncio.create_task(
                run_load(f"{server.capture_url}/p/{endpoint['token']}", stop, workers=SENDERS)
            )
            await asyncio.sleep(0.5)  # load running on both workers
            async with api.delete(f"{server.url}/api/endpoints/{endpoint['id']}") as resp:
                assert resp.status == 200
                deleted = await resp.json()
            await asyncio.sleep(0.3)  # the other worker's cache learns of it meanwhile
            stop.set()
            result = await load
            # Every request has been answered: each acknowledged hit was committed
            # (and deleted with its endpoint) or dropped for want of its endpoint.
            assert deleted["hits_deleted"] > 0, result.summary()
            dropped = dropped_hits(server.log())
            assert deleted["hits_deleted"] + dropped == len(result.acknowledged)
            assert await rows_left(db, endpoint["id"]) == dict.fromkeys(ENDPOINT_TABLES, 0)
            still_readable = await read_hits(api, server.url, result.acknowledged)
            assert still_readable == []
    finally:
        await asyncio.to_thread(server.stop)


def dropped_hits(server_log: str) -> int:
    """Hits the server's writers dropped for want of their endpoint, from their log lines."""
    events = (json.loads(line) for line in server_log.splitlines() if line.startswith("{"))
    return sum(e["hits"] for e in events if e["event"] == "writer.dropped_deleted_endpoint")


async def read_hits(api: aiohttp.ClientSession, base: str, hit_ids: Sequence[str]) -> list[str]:
    """The hit ids GET /api/hits/{id} still answers for (anything but 404)."""
    pending = list(hit_ids)
    found: list[str] = []

    async def reader() -> None:
        while pending:
            hit_id = pending.pop()
            async with api.get(f"{base}/api/hits/{hit_id}") as resp:
                if resp.status != 404:
                    found.append(hit_id)

    await asyncio.gather(*(reader() for _ in range(SENDERS)))
    return found


async def test_a_batch_and_a_delete_in_either_order(
    pg_url: str, db: asyncpg.Connection, store: EndpointStore
) -> None:
    """A batch committing while the delete runs, and the other way round."""
    pool = await create_pool(pg_url)
    try:
        # The batch holds its transaction open (in a hook) while the delete starts.
        first = await new_endpoint(db)
        writer = HitWriter(pool)
        in_transaction, go_on = asyncio.Event(), asyncio.Event()

        async def hold(_conn: asyncpg.Connection, _hits: Sequence[Hit]) -> None:
            in_transaction.set()
            await go_on.wait()

        writer.transaction_hooks.append(hold)
        writer.start()
        batch = asyncio.create_task(writer.submit(spool_hit(first, "a")))
        await in_transaction.wait()
        delete = asyncio.create_task(store.delete(first))
        await asyncio.sleep(0.1)
        assert not delete.done()  # waits for the batch to commit
        go_on.set()
        await batch
        assert await delete == 1  # the hit committed meanwhile is counted and deleted
        assert await rows_left(db, first) == dict.fromkeys(ENDPOINT_TABLES, 0)
        await writer.close()

        # The delete holds its transaction open while the batch starts.
        second = await new_endpoint(db)
        writer = HitWriter(pool)
        writer.start()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM endpoints WHERE id = $1", second)
            batch = asyncio.create_task(writer.submit(spool_hit(second, "b")))
            await asyncio.sleep(0.1)
            assert not batch.done()  # waits for the delete to commit
        await batch  # acknowledged, and dropped with its endpoint
        await writer.close()
        assert await rows_left(db, second) == dict.fromkeys(ENDPOINT_TABLES, 0)
        assert writer.dropped_total == 1
    finally:
        await pool.close()


async def test_a_spooled_hit_of_a_deleted_endpoint_is_not_replayed(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection, store: EndpointStore
) -> None:
    gone, kept = await new_endpoint(db), await new_endpoint(db)
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    spool.append([spool_hit(gone, "a"), spool_hit(kept, "a"), spool_hit(gone, "b")])
    spool.close()
    assert await store.delete(gone) == 0  # the database was down: the hits wait in the spool
    dropped = await replay_spool(pg_url, spool)
    assert spool.segments() == []
    assert await rows_left(db, gone) == dict.fromkeys(ENDPOINT_TABLES, 0)
    assert await rows_left(db, kept) == {
        "hits": 1, "click_keys": 1, "forward_outbox": 0, "forward_attempts": 0
    }  # fmt: skip
    assert dropped == 2
