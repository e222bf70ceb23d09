"""Group commit: many requests, few transactions, nothing lost, duplicates settled by the DB."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from monitor.app import create_app
from monitor.typedefs import WRITER
from tests.conftest import AUTH, capture_path


async def test_thousand_hits_from_fifty_clients(
    client: TestClient, make_endpoint: Any, db: Any
) -> None:
    endpoint = await make_endpoint()
    batches: list[int] = []
    writer = client.app[WRITER]
    writer.committed_listeners.append(lambda hits, _s: batches.append(len(hits)))
    url = str(client.make_url(capture_path(endpoint)))

    async def sender(worker: int) -> list[int]:
        async with aiohttp.ClientSession() as session:
            statuses = []
            for i in range(20):
                async with session.get(url, params={"click_id": f"{worker}-{i}"}) as resp:
                    statuses.append(resp.status)
            return statuses

    results = await asyncio.gather(*(sender(w) for w in range(50)))
    assert all(status == 200 for statuses in results for status in statuses)
    assert (
        await db.fetchval("SELECT count(*) FROM hits WHERE endpoint_id = $1", endpoint["id"])
        == 1000
    )
    assert await db.fetchval("SELECT count(DISTINCT click_id) FROM hits") == 1000
    assert sum(batches) == 1000
    assert len(batches) < 1000  # requests shared transactions


async def test_duplicates_flagged_first_wins(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint()
    path = capture_path(endpoint)
    first = await client.get(path + "?click_id=abc&payout=1")
    assert first.status == 200
    # Several repeats in one batch, and one in a later batch.
    await asyncio.gather(*(client.get(path + "?click_id=abc&payout=1") for _ in range(3)))
    await client.get(path + "?click_id=abc&payout=1")
    await client.get(path + "?click_id=other")
    hits = (
        await (
            await client.get(f"/api/endpoints/{endpoint['id']}/hits?limit=10", headers=AUTH)
        ).json()
    )["items"]
    hits.reverse()
    assert len(hits) == 6
    original = hits[0]
    assert original["flags"] == []
    for dup in hits[1:5]:
        flags = [f for f in dup["flags"] if f["flag"] == "duplicate_click_id"]
        assert len(flags) == 1
        assert flags[0]["first_hit_id"] == original["id"]
    assert hits[5]["flags"] == []


async def test_overload_answers_503_with_retry_after(
    aiohttp_client: Any, config: Any, db: Any, pg_url: str
) -> None:
    client = await aiohttp_client(create_app(config.replace(queue_max_hits=2, batch_max_hits=1)))
    endpoint = await (await client.post("/api/endpoints", json={"name": "o"}, headers=AUTH)).json()
    path = capture_path(endpoint)
    # Stall the database: the first batch waits on this lock, the queue fills behind it.
    locker = await __import__("asyncpg").connect(pg_url)
    tx = locker.transaction()
    await tx.start()
    await locker.execute("LOCK TABLE hits IN ACCESS EXCLUSIVE MODE")
    try:
        pending = [asyncio.create_task(client.get(path + f"?n={i}")) for i in range(3)]
        await asyncio.sleep(0.5)
        resp = await client.get(path + "?n=overflow")
        assert resp.status == 503
        assert resp.headers["Retry-After"].isdigit()
        assert client.app[WRITER].queue_depth <= 2
    finally:
        await tx.rollback()
        await locker.close()
    statuses = [(await t).status for t in pending]
    assert statuses == [200, 200, 200]
    count = await db.fetchval("SELECT count(*) FROM hits")
    assert count == 3
