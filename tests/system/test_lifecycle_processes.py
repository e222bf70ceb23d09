"""The click lifecycle across real `serve` processes sharing one database: the flags
come out as the arrival order says, whichever process each status went through."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.helpers.server import ServerProcess
from tests.system.test_duplicates_processes import post_json

pytestmark = pytest.mark.slow

CLICKS = 60
CONCURRENT = 20


async def send(session: aiohttp.ClientSession, base: str, token: str, query: str) -> str:
    async with session.get(f"{base}/p/{token}?{query}") as resp:
        assert resp.status == 200
        return resp.headers["X-Postback-Monitor-Hit-Id"]


async def flags_of(db: asyncpg.Connection, hit_ids: list[str]) -> dict[str, list[str]]:
    rows = await db.fetch(
        "SELECT id, flags FROM hits WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in hit_ids]
    )
    return {str(r["id"]): [f["flag"] for f in r["flags"]] for r in rows}


async def test_sale_then_reversal_through_alternating_processes(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    servers = [ServerProcess(tmp_path / f"data{n}", database_url=pg_url).start() for n in range(2)]
    try:
        endpoint = await post_json(
            f"{servers[0].url}/api/endpoints", {"name": "life", "settings": {"preset": "keitaro"}}
        )
        token = endpoint["token"]
        limit = asyncio.Semaphore(CONCURRENT)

        async def sequence(session: aiohttp.ClientSession, n: int) -> tuple[str, str]:
            # The sale is answered (committed) before the reversal is sent, through the
            # other process; clicks run side by side, so batches mix them.
            async with limit:
                first, second = servers[n % 2].capture_url, servers[(n + 1) % 2].capture_url
                sale = await send(session, first, token, f"subid=s{n}&status=sale&payout=2")
                refund = await send(session, second, token, f"subid=s{n}&status=rejected")
                return sale, refund

        async def race(session: aiohttp.ClientSession, n: int) -> tuple[str, str]:
            # Sale and refund at once through the two processes: either order may win,
            # but the flags must agree with one order.
            async with limit:
                return await asyncio.gather(
                    send(session, servers[n % 2].capture_url, token, f"subid=r{n}&status=sale"),
                    send(
                        session,
                        servers[(n + 1) % 2].capture_url,
                        token,
                        f"subid=r{n}&status=refund",
                    ),
                )  # type: ignore[return-value]

        async with aiohttp.ClientSession() as session:
            ordered = await asyncio.gather(*(sequence(session, n) for n in range(CLICKS)))
            raced: list[Any] = await asyncio.gather(*(race(session, n) for n in range(CLICKS)))
    finally:
        for server in servers:
            server.stop()

    found = await flags_of(db, [i for pair in ordered for i in pair])
    assert all(flags == [] for flags in found.values()), found
    assert len(found) == 2 * CLICKS

    found = await flags_of(db, [i for pair in raced for i in pair])
    orders = {"sale first": 0, "refund first": 0}
    for sale, refund in raced:
        if found[refund] == ["orphan_reversal"]:
            assert found[sale] == ["conversion_after_reversal"], (found[sale], found[refund])
            orders["refund first"] += 1
        else:
            assert (found[sale], found[refund]) == ([], []), (found[sale], found[refund])
            orders["sale first"] += 1
    assert sum(orders.values()) == CLICKS
    states = await db.fetch(
        "SELECT click_id, converted, reversed_hit_id FROM click_lifecycle WHERE endpoint_id = $1",
        endpoint["id"],
    )
    assert len(states) == 2 * CLICKS
    assert all(r["converted"] and r["reversed_hit_id"] is not None for r in states)
