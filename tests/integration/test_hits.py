"""Reading hits through the API: filters by flag, flagged, click id and time; stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from monitor.rules.charts import HOUR
from monitor.storage.charts import AGGREGATE
from monitor.storage.hit_rows import COPY_COLUMNS, copy_record
from monitor.storage.hit_stats import FOREVER
from monitor.storage.hits import HitFilter, list_query
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.hits import judged_hit

QUERIES = [
    "click_id=ok-1&payout=1.50&currency=USD",  # clean
    "click_id={clickid}&payout=2",  # unreplaced_macro
    "click_id=bad-amt&payout=1,50",  # invalid_amount
    "click_id=bad-both&payout=1-&currency=XXY",  # invalid_amount + invalid_currency
    "click_id=ok-1&payout=1.50&currency=USD",  # duplicate_click_id
    "click_id=ok-2",  # clean
]


async def capture_all(capture: CaptureClient, endpoint: dict[str, Any]) -> list[str]:
    ids = []
    for query in QUERIES:
        resp = await capture.get(f"{capture_path(endpoint)}?{query}")
        assert resp.status == 200
        ids.append(resp.headers["X-Postback-Monitor-Hit-Id"])
    return ids


async def listed(client: TestClient, endpoint: dict[str, Any], query: str) -> list[str]:
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits?{query}", headers=AUTH)
    assert resp.status == 200, await resp.text()
    return [hit["id"] for hit in reversed((await resp.json())["items"])]


async def test_filters(client: TestClient, capture: CaptureClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint()
    clean, macro, amount, both, dup, clean2 = await capture_all(capture, endpoint)
    assert await listed(client, endpoint, "") == [clean, macro, amount, both, dup, clean2]
    assert await listed(client, endpoint, "flagged=true") == [macro, amount, both, dup]
    assert await listed(client, endpoint, "flagged=false") == [clean, clean2]
    assert await listed(client, endpoint, "flag=invalid_amount") == [amount, both]
    assert await listed(client, endpoint, "flag=invalid_currency") == [both]
    # Repeated flag= means any of them.
    assert await listed(client, endpoint, "flag=unreplaced_macro&flag=duplicate_click_id") == [
        macro,
        dup,
    ]
    assert await listed(client, endpoint, "flag=ip_not_allowed") == []
    assert await listed(client, endpoint, "click_id=ok-1") == [clean, dup]
    assert await listed(client, endpoint, "click_id=ok-1&flagged=false") == [clean]
    # A macro click id is stored as received and found by it.
    assert await listed(client, endpoint, "click_id=%7Bclickid%7D") == [macro]


async def test_time_range(client: TestClient, make_endpoint: Any, db: asyncpg.Connection) -> None:
    endpoint = await make_endpoint()
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    hits = [
        judged_hit(endpoint["id"], {}, f"click_id=t{n}", base + timedelta(hours=n))
        for n in range(4)
    ]
    await db.copy_records_to_table(
        "hits", records=[copy_record(h) for h in hits], columns=COPY_COLUMNS
    )
    ids = [str(h.id) for h in hits]
    assert await listed(client, endpoint, "since=2026-03-01T13:00:00Z") == ids[1:]
    assert await listed(client, endpoint, "until=2026-03-01T13:00:00Z") == ids[:1]
    assert (
        await listed(client, endpoint, "since=2026-03-01T13:00:00Z&until=2026-03-01T15:00:00Z")
        == ids[1:3]
    )
    assert await listed(client, endpoint, "since=2026-03-01T14:00:00%2B02:00") == ids
    resp = await client.get(
        f"/api/endpoints/{endpoint['id']}/hits?since=2026-03-01T13:00:00", headers=AUTH
    )
    assert resp.status == 400
    assert "time zone" in (await resp.json())["error"]["message"]


async def stats(client: TestClient, endpoint: dict[str, Any], query: str = "") -> Any:
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/stats?{query}", headers=AUTH)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_stats(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint()
    empty = await stats(client, endpoint)
    assert empty == {
        "window": "24h",
        "total": 0,
        "flagged": 0,
        "test_hits": 0,
        "by_flag": {},
        "duplicate_rate": 0.0,
        "last_hit_at": None,
    }
    ids = await capture_all(capture, endpoint)
    # Older hits: inside 7d but outside 24h, and outside every window.
    now = datetime.now(UTC)
    old = [
        judged_hit(endpoint["id"], {}, "click_id=old&payout=x", now - timedelta(days=3)),
        judged_hit(endpoint["id"], {}, "click_id=older", now - timedelta(days=30)),
    ]
    await db.copy_records_to_table(
        "hits", records=[copy_record(h) for h in old], columns=COPY_COLUMNS
    )
    day = await stats(client, endpoint, "window=24h")
    assert day["window"] == "24h"
    assert (day["total"], day["flagged"]) == (6, 4)
    # Hits are counted once per flag they carry: "macro" has one flag per bad param.
    assert day["by_flag"] == {
        "duplicate_click_id": 1,
        "invalid_amount": 2,
        "invalid_currency": 1,
        "unreplaced_macro": 1,
    }
    assert day["duplicate_rate"] == round(1 / 6, 6)
    newest = await (await client.get(f"/api/hits/{ids[-1]}", headers=AUTH)).json()
    assert day["last_hit_at"] == newest["received_at"]
    assert (await stats(client, endpoint, "window=1h"))["total"] == 6
    week = await stats(client, endpoint, "window=7d")
    assert (week["total"], week["flagged"], week["by_flag"]["invalid_amount"]) == (7, 5, 3)
    assert week["last_hit_at"] == newest["received_at"]


async def test_stats_last_hit_at_outlives_the_window(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint()
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    hit = judged_hit(endpoint["id"], {}, "click_id=quiet", when)
    await db.copy_records_to_table("hits", records=[copy_record(hit)], columns=COPY_COLUMNS)
    result = await stats(client, endpoint, "window=1h")
    assert (result["total"], result["last_hit_at"]) == (0, when.isoformat())


async def test_stats_bad_input(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint()
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/stats?window=2h", headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_query"
    resp = await client.get("/api/endpoints/999/stats", headers=AUTH)
    assert resp.status == 404
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/stats")
    assert resp.status == 401


async def plan(db: asyncpg.Connection, sql: str, *args: Any) -> str:
    # Planner costs on a nearly empty table would favour sequential scans.
    await db.execute("SET enable_seqscan = off")
    try:
        rows = await db.fetch(f"EXPLAIN {sql}", *args)
    finally:
        await db.execute("RESET enable_seqscan")
    return "\n".join(r[0] for r in rows)


async def test_queries_use_the_endpoint_index(db: asyncpg.Connection) -> None:
    # The stats' and counters' count of the hours outside the rollup.
    text = await plan(db, AGGREGATE, [1], datetime.now(UTC) - HOUR, FOREVER, HOUR)
    # Partitions name their copy of hits_endpoint_newest after its columns.
    assert "endpoint_id_received_at_id_idx" in text, text
    assert "Seq Scan on hits_" not in text, text
    sql, args = list_query(1, HitFilter(flags=("invalid_amount",)), None, 50)
    text = await plan(db, sql, *args)
    assert "Seq Scan on hits_" not in text, text
