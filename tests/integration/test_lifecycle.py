"""The click lifecycle through the real capture listener and writer: statuses stored
and shown, flags settled by the database in arrival order, forgotten with the hits.
(Across two server processes: tests/system/test_lifecycle_processes.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.server.app import create_app
from monitor.storage.db import create_pool
from monitor.storage.writer import HitWriter
from tests.conftest import AUTH, CaptureClient, open_capture
from tests.helpers.captured import flags, hit, send
from tests.helpers.hits import judged_hit
from tests.helpers.metrics import parse, value
from tests.helpers.signin import sign_in
from tests.integration.test_writer import add_endpoint


async def test_lead_sale_reversal_is_clean_and_each_status_is_stored(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(settings={"preset": "keitaro"})
    ids = [
        await send(capture, endpoint, f"subid=k1&status={status}&payout=1")
        for status in ("lead", "sale", "rejected", "rebill", "test")
    ]
    hits = [await hit(client, i) for i in ids]
    assert [h["status"] for h in hits] == ["lead", "sale", "rejected", "rebill", "test"]
    assert [h["flags"] for h in hits[:4]] == [[]] * 4  # and lead, sale: no duplicate either
    # A test status is a test postback: no step of the click's life, flagged as such.
    assert [f["flag"] for f in hits[4]["flags"]] == ["test_traffic"]
    # The hit page and the list show it.
    await sign_in(client)
    page = await (await client.get(f"/hits/{ids[2]}")).text()
    assert '<dd id="hit-status">rejected</dd>' in page
    rows = await (await client.get(f"/endpoints/{endpoint['id']}")).text()
    # The event is the status here, so the badge shows only where they differ.
    assert '<span class="badge status" title="status">' not in rows
    affise = await make_endpoint(settings={"preset": "affise"})
    await send(capture, affise, "click_id=x1&goal=1&status=3")
    rows = await (await client.get(f"/endpoints/{affise['id']}")).text()
    assert '<span class="badge status" title="status">rejected</span>' in rows


async def test_reversal_first_is_an_orphan_and_a_sale_after_it_is_flagged(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    refund = await send(capture, endpoint, "click_id=c1&transactionType=RFND")
    sale = await send(capture, endpoint, "click_id=c1&transactionType=SALE")
    again = await send(capture, endpoint, "click_id=c1&transactionType=CGBK")
    first = (await hit(client, refund))["flags"]
    assert [f["flag"] for f in first] == ["orphan_reversal"]
    assert first[0]["param"] == "transactionType" and first[0]["value"] == "RFND"
    assert first[0]["status"] == "reversal"
    after = (await hit(client, sale))["flags"]
    assert [f["flag"] for f in after] == ["conversion_after_reversal"]
    assert after[0]["reversed_hit_id"] == refund
    # A chargeback once the click has converted is no orphan (and not the same key).
    assert await flags(client, again) == []
    # An unrelated click id starts afresh.
    other = await send(capture, endpoint, "click_id=c2&transactionType=SALE")
    assert await flags(client, other) == []
    # Counted by flag, as every flag is.
    samples = parse(await (await client.get("/metrics", headers=AUTH)).text())
    ep = str(endpoint["id"])
    for flag in ("orphan_reversal", "conversion_after_reversal"):
        assert value(samples, "postback_monitor_flags_total", endpoint=ep, flag=flag) == 1


async def test_approved_then_pending_is_a_regression(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(settings={"preset": "affise"})
    approved = await send(capture, endpoint, "click_id=a1&goal=1&status=1&sum=2")
    pending = await send(capture, endpoint, "click_id=a1&goal=1&status=2&sum=2")
    assert await flags(client, approved) == []
    flag = (await hit(client, pending))["flags"]
    assert [f["flag"] for f in flag] == ["status_regression"]  # not a duplicate: own key
    assert flag[0]["previous_status"] == "approved" and flag[0]["previous_hit_id"] == approved
    # An endpoint's own map reads a value its preset does not know.
    mapped = await make_endpoint(settings={"preset": "affise", "statuses": {"map": {"7": "sale"}}})
    assert (await hit(client, await send(capture, mapped, "click_id=a1&status=7")))["status"] == (
        "sale"
    )


async def test_the_state_survives_a_restart(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, config: Config,
    aiohttp_client: Any,
) -> None:  # fmt: skip
    endpoint = await make_endpoint(settings={"preset": "keitaro"})
    sale = await send(capture, endpoint, "subid=r1&status=sale")
    # A second app on the same database stands for the server after a restart.
    second = await aiohttp_client(create_app(config))
    async with open_capture(second, config) as capture2:
        reversal = await send(capture2, endpoint, "subid=r1&status=rejected")
        resold = await send(capture2, endpoint, "subid=r1&status=sale")
    assert await flags(client, sale) == []
    assert await flags(client, reversal) == []
    # The sale again: a duplicate of the first (same key), and after the rejection.
    assert await flags(client, resold) == ["duplicate_click_id", "conversion_after_reversal"]


async def test_deleting_hits_and_clearing_forget_the_lifecycle(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(settings={"preset": "keitaro"})
    sale = await send(capture, endpoint, "subid=d1&status=sale")
    resp = await client.delete(f"/api/hits/{sale}", headers=AUTH)
    assert resp.status in (200, 204)
    # The sale is gone, so a rejection now has nothing before it.
    orphan = await send(capture, endpoint, "subid=d1&status=rejected")
    assert await flags(client, orphan) == ["orphan_reversal"]
    lead = await send(capture, endpoint, "subid=d2&status=lead")
    await send(capture, endpoint, "subid=d2&status=approved")
    # Deleting the lead keeps the approval: the click still converted.
    assert (await client.delete(f"/api/hits/{lead}", headers=AUTH)).status in (200, 204)
    refund = await send(capture, endpoint, "subid=d2&status=refund")
    assert await flags(client, refund) == []
    resp = await client.delete(f"/api/endpoints/{endpoint['id']}/hits", headers=AUTH)
    assert resp.status in (200, 204)
    cleared = await send(capture, endpoint, "subid=d2&status=refund")
    assert await flags(client, cleared) == ["orphan_reversal"]


async def test_one_batch_is_settled_in_arrival_order(db: Any, pg_url: str) -> None:
    """Many statuses of a few clicks in batches of 7, two batches in flight: each click's
    flags are those of its statuses in submit order."""
    await add_endpoint(db, 5)
    pool = await create_pool(pg_url)
    writer = HitWriter(pool, batch_max_hits=7)
    writer.start()
    now = datetime.now(UTC)
    plan = ["sale", "reversal", "sale", "approved", "pending", "lead", "rebill", "rejected"]
    hits = [
        judged_hit(
            5, {}, f"click_id=b{n % 5}&status={plan[n // 5]}", now + timedelta(microseconds=n)
        )
        for n in range(len(plan) * 5)
    ]
    try:
        await asyncio.gather(*(writer.submit(h) for h in hits))
    finally:
        await writer.close()
        await pool.close()
    expected = [None, None, "conversion_after_reversal", "conversion_after_reversal",
                "status_regression", "status_regression", None, None]  # fmt: skip
    for n, h in enumerate(hits):
        got = None if h.lifecycle is None else h.lifecycle["flag"]
        assert got == expected[n // 5], (n, h.verdict.status)
    stored = await db.fetch(
        "SELECT click_id, last_status, converted, reversed_hit_id IS NOT NULL AS reversed "
        "FROM click_lifecycle WHERE endpoint_id = 5 ORDER BY click_id"
    )
    assert [tuple(r) for r in stored] == [(f"b{i}", "lead", True, True) for i in range(5)]
