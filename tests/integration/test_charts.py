"""GET /api/endpoints/{id}/charts and the hourly rollup behind it: buckets against hits
stored at known times (a silent hour is a zero), flags and payouts per bucket, the
rollup filled on read and forgotten when hits go (one hit, a clear, retention), the
conversion delays, and who may read it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from monitor.rules import SETTINGS_KEYS
from monitor.rules.charts import HOUR, floor_time
from monitor.storage.charts import FILL_LOCK_KEY, fill_recent
from monitor.storage.db import create_pool
from monitor.storage.hit_rows import COPY_COLUMNS, copy_record
from monitor.storage.retention import enforce
from monitor.storage.spool import Spool
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.hits import judged_hit, replay_spool
from tests.helpers.signin import sign_in
from tests.helpers.tokens import bearer, make_token


async def store(
    db: asyncpg.Connection, endpoint: dict[str, Any], *hits: tuple[str, datetime]
) -> list[str]:
    """Hits of these queries at these times, judged by the endpoint's settings."""
    rules = {k: v for k, v in endpoint["settings"].items() if k in SETTINGS_KEYS}
    made = [judged_hit(endpoint["id"], rules, q, when) for q, when in hits]
    await db.copy_records_to_table(
        "hits", records=[copy_record(h) for h in made], columns=COPY_COLUMNS
    )
    return [str(h.id) for h in made]


async def charts(client: TestClient, endpoint: dict[str, Any], query: str = "") -> dict[str, Any]:
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/charts{query}", headers=AUTH)
    assert resp.status == 200, await resp.text()
    doc: dict[str, Any] = await resp.json()
    return doc


def by_start(doc: dict[str, Any]) -> dict[datetime, dict[str, Any]]:
    return {datetime.fromisoformat(b["start"]): b for b in doc["buckets"]}


async def test_hourly_buckets_count_hits_flags_and_payouts_with_silent_hours_as_zero(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint(settings={"preset": "generic"})
    hour = floor_time(datetime.now(UTC), HOUR)
    five, four = hour - 5 * HOUR, hour - 4 * HOUR
    ids = await store(
        db,
        endpoint,
        ("click_id=a1&payout=1.50&currency=USD", five + timedelta(minutes=1)),
        ("click_id=a2&payout=2.25&currency=USD", five + timedelta(minutes=20)),
        ("click_id=a3&payout=3&currency=EUR", five + timedelta(minutes=59)),
        ("click_id={clickid}&payout=1", five + timedelta(minutes=30)),
        ("click_id=%7Bsub1%7D", five + timedelta(minutes=31)),
        ("click_id=ping&status=ping", five + timedelta(minutes=32)),  # a test postback
        ("click_id=b1&payout=4&currency=USD", hour - 2 * HOUR),
    )
    doc = await charts(client, endpoint)
    assert doc["range"] == "24h" and doc["bucket_seconds"] == 3600
    assert len(doc["buckets"]) == 24
    assert datetime.fromisoformat(doc["buckets"][-1]["start"]) == hour
    buckets = by_start(doc)
    assert buckets[five] == {
        "start": five.isoformat(),
        "hits": 5,
        "clean": 3,
        "flagged": 2,
        "by_flag": {"unreplaced_macro": 2},
        # The macro hit's payout has no currency: "".
        "payouts": {"": "1", "EUR": "3", "USD": "3.75"},
    }
    assert buckets[four]["hits"] == 0 and buckets[four]["payouts"] == {}
    assert buckets[hour - 2 * HOUR]["payouts"] == {"USD": "4"}
    assert sum(b["hits"] for b in doc["buckets"]) == 6
    assert doc["currencies"] == ["", "EUR", "USD"]
    assert doc["delays"] is None

    # The closed hours are kept, silent ones too, and read back the same.
    rolled = await db.fetch(
        "SELECT hour, hits FROM hit_hours WHERE endpoint_id = $1", endpoint["id"]
    )
    assert {r["hour"]: r["hits"] for r in rolled}[five] == 5
    assert len(rolled) >= 22
    assert (await charts(client, endpoint))["buckets"] == doc["buckets"]
    # Served from the rollup: a row changed behind its back shows.
    await db.execute(
        "UPDATE hit_hours SET hits = hits + 100 WHERE endpoint_id = $1 AND hour = $2",
        endpoint["id"], five,
    )  # fmt: skip
    assert by_start(await charts(client, endpoint))[five]["hits"] == 105

    # Deleting a hit forgets its hour, which is counted again.
    resp = await client.delete(f"/api/hits/{ids[0]}", headers=AUTH)
    assert resp.status == 204, await resp.text()
    assert by_start(await charts(client, endpoint))[five]["hits"] == 4
    assert by_start(await charts(client, endpoint))[five]["payouts"] == {
        "": "1", "EUR": "3", "USD": "2.25",
    }  # fmt: skip
    # Clearing the endpoint forgets them all.
    assert (
        await client.delete(f"/api/endpoints/{endpoint['id']}/hits", headers=AUTH)
    ).status == 200
    assert (
        await db.fetchval("SELECT count(*) FROM hit_hours WHERE endpoint_id = $1", endpoint["id"])
        == 0
    )
    assert sum(b["hits"] for b in (await charts(client, endpoint))["buckets"]) == 0


async def test_minute_and_week_ranges(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint()
    now = datetime.now(UTC)
    minute = floor_time(now, timedelta(minutes=1))
    await store(
        db,
        endpoint,
        ("click_id=m1", minute - timedelta(minutes=10)),
        ("click_id=m2", minute - timedelta(minutes=10) + timedelta(seconds=59)),
        ("click_id=d3", now - timedelta(days=3)),
        ("click_id=d9", now - timedelta(days=9)),  # outside every range
    )
    resp = await capture.get(f"{capture_path(endpoint)}?click_id=live")
    assert resp.status == 200
    hour_doc = await charts(client, endpoint, "?range=1h")
    assert hour_doc["bucket_seconds"] == 60 and len(hour_doc["buckets"]) == 60
    minutes = by_start(hour_doc)
    assert minutes[minute - timedelta(minutes=10)]["hits"] == 2
    assert minutes[minute - timedelta(minutes=9)]["hits"] == 0
    assert sum(b["hits"] for b in hour_doc["buckets"]) == 3  # the live hit too
    week = await charts(client, endpoint, "?range=7d")
    assert len(week["buckets"]) == 168
    assert sum(b["hits"] for b in week["buckets"]) == 4
    assert by_start(week)[floor_time(now - timedelta(days=3), HOUR)]["hits"] == 1


async def test_retention_forgets_the_hours_it_deleted(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint(settings={"retention_days": 1})
    now = datetime.now(UTC)
    old = floor_time(now - timedelta(days=2), HOUR)
    await store(db, endpoint, ("click_id=old", old + timedelta(minutes=5)))
    assert by_start(await charts(client, endpoint, "?range=7d"))[old]["hits"] == 1
    await enforce(db, None, now)
    assert by_start(await charts(client, endpoint, "?range=7d"))[old]["hits"] == 0


async def test_conversion_delays(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint(settings={"conversion_time_param": "conv_ts"})
    assert endpoint["settings"]["conversion_time_param"] == "conv_ts"
    now = datetime.now(UTC).replace(microsecond=0)
    at = now - timedelta(minutes=30)
    iso = (at - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await store(
        db,
        endpoint,
        (f"click_id=c1&conv_ts={int(at.timestamp()) - 20}", at),  # 20 s
        (f"click_id=c2&conv_ts={int(at.timestamp() * 1000) - 120_000}", at),  # 2 min, in ms
        (f"click_id=c3&conv_ts={iso}", at),  # 10 min
        (f"click_id=c4&conv_ts={int(at.timestamp()) - 3 * 86400}", at),  # 3 days
        ("click_id=c5&conv_ts={conversion_time}", at),  # a macro: unreadable
        ("click_id=c6", at),  # no parameter
    )
    delays = (await charts(client, endpoint))["delays"]
    assert delays["param"] == "conv_ts" and delays["unreadable"] == 1
    assert delays["hits_read"] == 6
    counts = {b["label"]: b["count"] for b in delays["buckets"]}
    assert counts == {
        "< 1 min": 1, "1–5 min": 1, "5–15 min": 1, "15–60 min": 0,
        "1–6 h": 0, "6–24 h": 0, "1–7 d": 1, "> 7 d": 0,
    }  # fmt: skip


async def test_bad_input_and_restricted_tokens(client: TestClient, make_endpoint: Any) -> None:
    mine, theirs = await make_endpoint(), await make_endpoint()
    for query in ("?range=2h", "?range=", "?window=1h"):
        resp = await client.get(f"/api/endpoints/{mine['id']}/charts{query}", headers=AUTH)
        assert resp.status == 400, query
        assert (await resp.json())["error"]["code"] == "invalid_query"
    resp = await client.patch(
        f"/api/endpoints/{mine['id']}", json={"settings": {"conversion_time_param": ""}},
        headers=AUTH,
    )  # fmt: skip
    assert resp.status == 400 and "conversion_time_param" in (await resp.json())["error"]["message"]
    token = await make_token(client, "read", [mine["id"]])
    ok = await client.get(f"/api/endpoints/{mine['id']}/charts", headers=bearer(token))
    assert ok.status == 200
    hidden = await client.get(f"/api/endpoints/{theirs['id']}/charts", headers=bearer(token))
    assert hidden.status == 404


async def test_pages_draw_the_charts_without_a_script(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    """The page's SVG and its table carry the numbers; the fragment the live page
    fetches is the same section; the endpoints page has a sparkline per endpoint."""
    endpoint = await make_endpoint(settings={"conversion_time_param": "conv_ts"})
    quiet = await make_endpoint()
    hour = floor_time(datetime.now(UTC), HOUR)
    at = hour - 3 * HOUR + timedelta(minutes=7)
    await store(
        db,
        endpoint,
        *[
            (f"click_id=p{i}&payout=2&currency=USD&conv_ts={int(at.timestamp())}", at)
            for i in range(3)
        ],
        ("click_id={clickid}", at),
    )
    await sign_in(client, f"/endpoints/{endpoint['id']}")
    page = await (await client.get(f"/endpoints/{endpoint['id']}")).text()
    start = (hour - 3 * HOUR).isoformat()
    assert f'data-start="{start}" data-hits="4" data-flagged="1"' in page
    assert f'data-start="{(hour - 2 * HOUR).isoformat()}" data-hits="0" data-flagged="0"' in page
    assert page.count('<g class="bucket" data-start=') == 24 + 24  # hits and USD payout
    assert 'data-currency="USD"' in page and 'data-sum="6"' in page
    assert (
        '<tr data-label="&lt; 1 min"><th scope="row">&lt; 1 min</th><td class="num">3</td>' in page
    )
    week = await client.get(f"/endpoints/{endpoint['id']}?chart=7d")
    assert (await week.text()).count('<g class="bucket" data-start=') == 2 * 168
    assert (await client.get(f"/endpoints/{endpoint['id']}?chart=2d")).status == 400
    fragment = await (await client.get(f"/endpoints/{endpoint['id']}/charts?chart=1h")).text()
    assert fragment.strip().startswith('<section class="card charts" id="charts" data-range="1h"')
    listing = await (await client.get("/endpoints")).text()
    counts = ["0"] * 24
    counts[-4] = "4"
    assert f'data-counts="{",".join(counts)}"' in listing
    assert f'data-counts="{",".join(["0"] * 24)}"' in listing
    assert quiet["name"] in listing


async def test_a_spool_replay_into_a_closed_hour_forgets_it(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection, pg_url: str, tmp_path: Path
) -> None:
    """Hits acknowledged during an outage are stored when it ends, into hours the
    rollup may have counted already: the replay forgets those hours."""
    endpoint = await make_endpoint()
    hour = floor_time(datetime.now(UTC), HOUR) - 3 * HOUR
    assert by_start(await charts(client, endpoint))[hour]["hits"] == 0  # counted: none
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    spool.append([judged_hit(endpoint["id"], {}, "click_id=late", hour + timedelta(minutes=10))])
    spool.close()
    await replay_spool(pg_url, spool)
    assert by_start(await charts(client, endpoint))[hour]["hits"] == 1


async def test_the_background_sweep_fills_every_endpoints_week(
    make_endpoint: Any, db: asyncpg.Connection, pg_url: str
) -> None:
    """What ``fill_forever`` runs hourly: the closed hours of the last 7 days of every
    endpoint, by one process at a time."""
    first, second = await make_endpoint(), await make_endpoint()
    five = floor_time(datetime.now(UTC), HOUR) - 5 * HOUR
    await store(db, second, ("click_id=x1", five), ("click_id=x2", five + timedelta(minutes=59)))
    pool = await create_pool(pg_url)
    try:
        await db.execute("SELECT pg_advisory_lock($1)", FILL_LOCK_KEY)  # another process
        assert await fill_recent(pool) == 0
        await db.execute("SELECT pg_advisory_unlock($1)", FILL_LOCK_KEY)
        assert await fill_recent(pool) == 2
    finally:
        await pool.close()
    rows = await db.fetch("SELECT endpoint_id, hour, hits FROM hit_hours")
    assert {r["endpoint_id"] for r in rows} == {first["id"], second["id"]}
    assert len(rows) >= 2 * 166
    assert {(r["endpoint_id"], r["hour"]): r["hits"] for r in rows}[(second["id"], five)] == 2
    assert sum(r["hits"] for r in rows) == 2
