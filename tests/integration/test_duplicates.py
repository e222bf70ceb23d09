"""Duplicate click ids, settled by the database: events, scopes, windows, one batch.
(Across processes and restarts: tests/system/test_duplicates_processes.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from monitor.storage.hit_rows import COPY_COLUMNS, copy_record
from monitor.storage.ledger import settle_duplicates
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.hits import judged_hit


async def hits_oldest_first(client: TestClient, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits?limit=500", headers=AUTH)
    assert resp.status == 200
    return list(reversed((await resp.json())["items"]))


def duplicate_of(hit: dict[str, Any]) -> str | None:
    """The first_hit_id of the hit's duplicate_click_id flag, or None for an original."""
    found = [f for f in hit["flags"] if f["flag"] == "duplicate_click_id"]
    assert len(found) <= 1
    return found[0]["first_hit_id"] if found else None


async def test_dedupe_is_event_aware_by_default(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    path = capture_path(endpoint)
    for query in (
        "click_id=c1&event=install",
        "click_id=c1&event=purchase&payout=9.99",  # another event: not a duplicate
        "click_id=c1&event=purchase&payout=9.99",  # the purchase again: a duplicate
        "click_id=c1",  # no event is a key of its own
    ):
        assert (await capture.get(f"{path}?{query}")).status == 200
    install, purchase, again, bare = await hits_oldest_first(client, endpoint)
    assert [duplicate_of(h) for h in (install, purchase, bare)] == [None, None, None]
    assert duplicate_of(again) == purchase["id"]
    flag = again["flags"][0]
    assert flag["param"] == "click_id" and flag["value"] == "c1"
    assert "purchase" in flag["message"] and purchase["id"] in flag["message"]


async def test_dedupe_scope_click_id_ignores_the_event(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(settings={"dedupe": {"scope": "click_id"}})
    path = capture_path(endpoint)
    for query in ("click_id=c1&event=install", "click_id=c1&event=purchase"):
        assert (await capture.get(f"{path}?{query}")).status == 200
    install, purchase = await hits_oldest_first(client, endpoint)
    assert duplicate_of(install) is None
    assert duplicate_of(purchase) == install["id"]


async def test_dedupe_scope_off_never_flags(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(settings={"dedupe": {"scope": "off"}})
    for _ in range(2):
        assert (await capture.get(f"{capture_path(endpoint)}?click_id=c1")).status == 200
    assert [duplicate_of(h) for h in await hits_oldest_first(client, endpoint)] == [None, None]


async def test_empty_and_macro_click_ids_never_dedupe(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    path = capture_path(endpoint)
    queries = ["click_id=", "click_id=", "click_id={clickid}", "click_id={clickid}", "payout=1"]
    queries += ["click_id=%7Bclickid%7D", "click_id=%7Bclickid%7D", "payout=1"]
    for query in queries:
        assert (await capture.get(f"{path}?{query}")).status == 200
    hits = await hits_oldest_first(client, endpoint)
    assert len(hits) == len(queries)
    assert all(duplicate_of(h) is None for h in hits)
    assert [h["click_id"] for h in hits[:2]] == [None, None]


async def test_window_with_real_time(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(settings={"dedupe": {"window": 1}})
    url = f"{capture_path(endpoint)}?click_id=w1"
    for pause_s in (0, 0, 1.3, 0):
        await asyncio.sleep(pause_s)
        assert (await capture.get(url)).status == 200
    first, repeat, later, later_repeat = await hits_oldest_first(client, endpoint)
    assert duplicate_of(first) is None
    assert duplicate_of(repeat) == first["id"]
    assert duplicate_of(later) is None  # the window passed: a new original
    assert duplicate_of(later_repeat) == later["id"]


async def test_window_measured_from_the_original(db: asyncpg.Connection) -> None:
    settings = {"dedupe": {"window": "1h"}}
    t0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    offsets = [timedelta(0), timedelta(minutes=59), timedelta(minutes=61), timedelta(minutes=90)]
    hits = [judged_hit(7, settings, "click_id=w&event=sale", t0 + offset) for offset in offsets]
    for hit in hits:  # one batch each, as capture would
        async with db.transaction():
            await settle_duplicates(db, [hit])
            await db.copy_records_to_table("hits", records=[copy_record(hit)], columns=COPY_COLUMNS)
    first, inside, after, inside_new = (h.duplicate for h in hits)
    assert first is None
    assert inside is not None and inside["first_hit_id"] == str(hits[0].id)
    # 61 minutes after the original: outside the window, so a new original...
    assert after is None
    # ...and the window now runs from it.
    assert inside_new is not None and inside_new["first_hit_id"] == str(hits[2].id)
    row = await db.fetchrow("SELECT first_hit_id, first_seen_at FROM click_keys")
    assert (row["first_hit_id"], row["first_seen_at"]) == (hits[2].id, hits[2].received_at)


async def test_within_one_batch_first_in_arrival_order_wins(db: asyncpg.Connection) -> None:
    t0 = datetime.now(UTC)
    hits = [judged_hit(8, {}, f"click_id=b&n={n}", t0) for n in range(4)]
    hits.append(judged_hit(8, {}, "click_id=other", t0))
    async with db.transaction():
        await settle_duplicates(db, hits)
    assert hits[0].duplicate is None and hits[4].duplicate is None
    assert [h.duplicate["first_hit_id"] for h in hits[1:4]] == [str(hits[0].id)] * 3  # type: ignore[index]
