"""Duplicate click ids, settled by the database: across processes, events, windows, restarts."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from monitor.model import ids
from monitor.model.hit import Hit
from monitor.rules import compile_settings, judge
from monitor.rules.params import parse_query
from monitor.storage.hit_rows import COPY_COLUMNS, copy_record
from monitor.storage.ledger import settle_duplicates
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.server import ServerProcess

CLICK_IDS = 100
COPIES = 5
CLIENTS = 50


async def hits_oldest_first(client: TestClient, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits?limit=500", headers=AUTH)
    assert resp.status == 200
    return list(reversed((await resp.json())["items"]))


def duplicate_of(hit: dict[str, Any]) -> str | None:
    """The first_hit_id of the hit's duplicate_click_id flag, or None for an original."""
    found = [f for f in hit["flags"] if f["flag"] == "duplicate_click_id"]
    assert len(found) <= 1
    return found[0]["first_hit_id"] if found else None


async def post_json(url: str, doc: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=doc, headers=AUTH) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()


@pytest.mark.slow
async def test_two_processes_fifty_clients_five_copies_each(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    servers = [ServerProcess(tmp_path / f"data{n}", database_url=pg_url).start() for n in range(2)]
    try:
        endpoint = await post_json(f"{servers[0].url}/api/endpoints", {"name": "dupes"})
        copies = [(f"click-{i:03d}", n) for i in range(CLICK_IDS) for n in range(COPIES)]
        random.Random(3).shuffle(copies)
        # Client c talks to server c % 2; the copies of one click id spread over clients.
        plans: list[list[str]] = [[] for _ in range(CLIENTS)]
        for position, (click_id, _n) in enumerate(copies):
            plans[position % CLIENTS].append(click_id)

        async def client(worker: int) -> list[int]:
            base = servers[worker % 2].capture_url
            async with aiohttp.ClientSession() as session:

                async def one(click_id: str) -> int:
                    url = f"{base}/p/{endpoint['token']}?click_id={click_id}&payout=1"
                    async with session.get(url) as resp:
                        return resp.status

                return await asyncio.gather(*(one(c) for c in plans[worker]))

        statuses = await asyncio.gather(*(client(w) for w in range(CLIENTS)))
        assert [s for per_client in statuses for s in per_client] == [200] * len(copies)
    finally:
        for server in servers:
            server.stop()

    rows = await db.fetch(
        "SELECT id, click_id, flags FROM hits WHERE endpoint_id = $1 ORDER BY received_at, id",
        endpoint["id"],
    )
    assert len(rows) == CLICK_IDS * COPIES
    originals: dict[str, str] = {}
    duplicates: list[tuple[str, str]] = []
    for row in rows:
        if row["flags"] == []:
            assert row["click_id"] not in originals, f"two originals for {row['click_id']}"
            originals[row["click_id"]] = str(row["id"])
        else:
            assert [f["flag"] for f in row["flags"]] == ["duplicate_click_id"], row["flags"]
            duplicates.append((row["click_id"], row["flags"][0]["first_hit_id"]))
    assert len(originals) == CLICK_IDS
    assert len(duplicates) == CLICK_IDS * (COPIES - 1)
    for click_id, first_hit_id in duplicates:
        assert first_hit_id == originals[click_id], click_id
    ledger = await db.fetch(
        "SELECT click_id, first_hit_id FROM click_keys WHERE endpoint_id = $1", endpoint["id"]
    )
    assert {r["click_id"]: str(r["first_hit_id"]) for r in ledger} == originals


@pytest.mark.slow
async def test_duplicate_found_after_a_restart(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    server = ServerProcess(tmp_path / "data", database_url=pg_url).start()
    try:
        endpoint = await post_json(f"{server.url}/api/endpoints", {"name": "restart"})
        url = f"{server.capture_url}/p/{endpoint['token']}?click_id=survivor&payout=2"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
            first_id = resp.headers["X-Postback-Monitor-Hit-Id"]
    finally:
        assert server.stop() == 0

    server = ServerProcess(
        tmp_path / "data", database_url=pg_url, port=server.port, capture_port=server.capture_port
    ).start()
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
            second_id = resp.headers["X-Postback-Monitor-Hit-Id"]
    finally:
        server.stop()
    flags = await db.fetchval("SELECT flags FROM hits WHERE id = $1", uuid.UUID(second_id))
    assert [(f["flag"], f["first_hit_id"]) for f in flags] == [("duplicate_click_id", first_id)]
    assert await db.fetchval("SELECT flags FROM hits WHERE id = $1", uuid.UUID(first_id)) == []


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


def make_hit(endpoint_id: int, settings: dict[str, Any], query: str, when: datetime) -> Hit:
    params = parse_query(query.encode())
    verdict = judge(compile_settings(settings), params, remote_ip=None, headers=[])
    millis = int(when.timestamp() * 1000)
    return Hit(
        id=ids.uuid7(millis),
        endpoint_id=endpoint_id,
        received_at=when,
        method="GET",
        path="/p/x",
        raw_query=query.encode(),
        params=params,
        body_params=[],
        headers=[],
        content_type="",
        body=b"",
        body_size=0,
        remote_ip=None,
        user_agent=None,
        verdict=verdict,
        flags=list(verdict.flags),
    )


async def test_window_measured_from_the_original(db: asyncpg.Connection) -> None:
    settings = {"dedupe": {"window": "1h"}}
    t0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    offsets = [timedelta(0), timedelta(minutes=59), timedelta(minutes=61), timedelta(minutes=90)]
    hits = [make_hit(7, settings, "click_id=w&event=sale", t0 + offset) for offset in offsets]
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
    hits = [make_hit(8, {}, f"click_id=b&n={n}", t0) for n in range(4)]
    hits.append(make_hit(8, {}, "click_id=other", t0))
    async with db.transaction():
        await settle_duplicates(db, hits)
    assert hits[0].duplicate is None and hits[4].duplicate is None
    assert [h.duplicate["first_hit_id"] for h in hits[1:4]] == [str(hits[0].id)] * 3  # type: ignore[index]
