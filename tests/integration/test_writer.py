"""Group commit: many requests, few transactions, nothing lost, duplicates settled by the DB."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from monitor.model.hit import Hit
from monitor.server.app import create_app
from monitor.storage.db import connect, create_pool
from monitor.storage.writer import PIPELINE_DEPTH, HitWriter
from monitor.web.appkeys import WRITER
from tests.conftest import AUTH, CaptureClient, capture_path, open_capture
from tests.helpers.hits import judged_hit


async def test_thousand_hits_from_fifty_clients(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: Any
) -> None:
    endpoint = await make_endpoint()
    batches: list[int] = []
    writer = client.app[WRITER]
    writer.committed_listeners.append(lambda hits, _s: batches.append(len(hits)))
    url = capture.url(capture_path(endpoint))

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


async def test_duplicates_flagged_first_wins(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    path = capture_path(endpoint)
    first = await capture.get(path + "?click_id=abc&payout=1")
    assert first.status == 200
    # Several repeats in one batch, and one in a later batch.
    await asyncio.gather(*(capture.get(path + "?click_id=abc&payout=1") for _ in range(3)))
    await capture.get(path + "?click_id=abc&payout=1")
    await capture.get(path + "?click_id=other")
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
    small = config.replace(queue_max_hits=2, batch_max_hits=1)
    client = await aiohttp_client(create_app(small))
    async with open_capture(client, small) as capture:
        endpoint = await (
            await client.post("/api/endpoints", json={"name": "o"}, headers=AUTH)
        ).json()
        path = capture_path(endpoint)
        # Stall the database: the first batch waits on this lock, the queue fills behind it.
        locker = await __import__("asyncpg").connect(pg_url)
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE hits IN ACCESS EXCLUSIVE MODE")
        try:
            # One hit at a time: PIPELINE_DEPTH one-hit batches wait on the lock, the
            # next two fill the queue, and the one after is refused.
            pending: list[asyncio.Task[Any]] = []
            for i in range(PIPELINE_DEPTH + 3):
                pending.append(asyncio.create_task(capture.get(path + f"?n={i}")))
                await asyncio.sleep(0.2)
            refused = [t for t in pending if t.done()]
            assert len(refused) == 1
            assert refused[0] is pending[-1]
            resp = refused[0].result()
            assert resp.status == 503
            assert resp.headers["Retry-After"].isdigit()
            assert client.app[WRITER].queue_depth == 2
        finally:
            await tx.rollback()
            await locker.close()
        accepted = pending[:-1]
        statuses = [(await t).status for t in accepted]
        assert statuses == [200] * len(accepted)
        count = await db.fetchval("SELECT count(*) FROM hits")
        assert count == len(accepted)


async def add_endpoint(db: Any, endpoint_id: int) -> None:
    """An endpoint row with this id: the writer stores hits only of existing endpoints."""
    await db.execute(
        "INSERT INTO endpoints (id, token, name) OVERRIDING SYSTEM VALUE VALUES ($1, $2, 'w')",
        endpoint_id,
        uuid.uuid4().hex,
    )


async def test_pipelined_batches_keep_arrival_order(db: Any, pg_url: str) -> None:
    """Batches commit side by side, yet the first hit of a click id stays the original."""
    await add_endpoint(db, 9)
    pool = await create_pool(pg_url)
    writer = HitWriter(pool, batch_max_hits=3)
    running = 0
    most_at_once = 0

    async def slow_hook(conn: Any, hits: Any) -> None:
        # Holds each transaction open after its ledger step, so the next batch's
        # ledger step meets this one's uncommitted keys.
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        await asyncio.sleep(0.05)
        running -= 1

    writer.transaction_hooks.append(slow_hook)
    writer.start()
    now = datetime.now(UTC)
    hits = [judged_hit(9, {}, f"click_id=k{n % 7}&n={n}", now) for n in range(60)]
    try:
        # gather starts the submits in list order: that is the arrival order.
        await asyncio.gather(*(writer.submit(hit) for hit in hits))
    finally:
        await writer.close()
        await pool.close()
    assert most_at_once == PIPELINE_DEPTH
    first_of: dict[str, Hit] = {}
    for hit in hits:
        click_id = hit.verdict.click_id
        assert click_id is not None
        first = first_of.setdefault(click_id, hit)
        if first is hit:
            assert hit.duplicate is None
        else:
            assert hit.duplicate is not None
            assert hit.duplicate["first_hit_id"] == str(first.id)
    stored = await db.fetchval("SELECT count(*) FROM hits WHERE endpoint_id = 9")
    assert stored == len(hits)


async def test_a_stalled_ledger_step_holds_back_the_next_batch(db: Any, pg_url: str) -> None:
    """Batch 1 is stuck on a ledger row another transaction holds; batch 2 must not
    settle its click id first, or a later copy would become the original."""
    await add_endpoint(db, 9)
    blocker = await connect(pg_url)
    await blocker.execute("BEGIN")
    await blocker.execute("INSERT INTO click_keys VALUES (9, 'k0', '', $1, now())", uuid.uuid4())
    pool = await create_pool(pg_url)
    writer = HitWriter(pool, batch_max_hits=2)
    writer.start()
    now = datetime.now(UTC)
    first, original, later_copy = (
        judged_hit(9, {}, f"click_id={click_id}", now) for click_id in ("k0", "k1", "k1")
    )
    try:
        # Batch 1 holds first and original and waits on k0; batch 2 holds later_copy.
        submitted = asyncio.gather(*(writer.submit(h) for h in (first, original, later_copy)))
        await asyncio.sleep(0.5)
        await blocker.execute("ROLLBACK")
        await submitted
    finally:
        await blocker.close()
        await writer.close()
        await pool.close()
    assert first.duplicate is None
    assert original.duplicate is None
    assert later_copy.duplicate is not None
    assert later_copy.duplicate["first_hit_id"] == str(original.id)
