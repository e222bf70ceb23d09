"""Duplicate click ids across real `serve` processes: two processes sharing one
database settle every copy, and a duplicate is found after a restart."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import AUTH
from tests.helpers.server import ServerProcess

CLICK_IDS = 100
COPIES = 5
CLIENTS = 50


async def post_json(url: str, doc: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=doc, headers=AUTH) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()


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
