"""Forwarding across real `serve` processes: pending forwards resume after a restart,
and two processes sharing the outbox never send a hit twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg

from tests.helpers.server import ServerProcess
from tests.helpers.server import admin_api as api
from tests.helpers.tracker import Tracker, eventually

HIT_ID = "X-Postback-Monitor-Hit-Id"


def serve_args(poll_s: str = "0.1", backoff_s: str = "0.3") -> list[str]:
    return [
        "--forward-allow", "127.0.0.1", "--forward-poll-s", poll_s,
        "--forward-backoff-s", backoff_s, "--forward-backoff-max-s", backoff_s,
    ]  # fmt: skip


async def test_pending_forwards_resume_after_restart(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection, tracker: Tracker
) -> None:
    tracker.default = 500
    server = ServerProcess(tmp_path / "data", database_url=pg_url, extra=serve_args())
    await asyncio.to_thread(server.start)
    try:
        endpoint = await api(
            server.url, "POST", "/api/endpoints",
            json={"name": "r", "settings": {"forward_url": tracker.url("/pb?c={click_id}")}},
        )  # fmt: skip
        async with aiohttp.ClientSession() as s:
            for i in range(5):
                async with s.get(
                    f"{server.capture_url}/p/{endpoint['token']}?click_id=k{i}"
                ) as resp:
                    assert resp.status == 200
        await eventually(lambda: len(tracker.requests) >= 5)
    finally:
        assert await asyncio.to_thread(server.stop) == 0
    failed_before = len(tracker.requests)
    assert await db.fetchval("SELECT count(*) FROM forward_outbox WHERE state = 'pending'") == 5

    tracker.default = 200
    server = ServerProcess(tmp_path / "data", database_url=pg_url, extra=serve_args())
    await asyncio.to_thread(server.start)
    try:
        await eventually(lambda: sum(r.query[0][1].startswith("k") for r in tracker.requests) >= 5)

        async def all_delivered() -> bool:
            return (
                await db.fetchval("SELECT count(*) FROM forward_outbox WHERE state = 'delivered'")
                == 5
            )

        for _ in range(100):
            if await all_delivered():
                break
            await asyncio.sleep(0.1)
        assert await all_delivered()
    finally:
        assert await asyncio.to_thread(server.stop) == 0
    # Each hit reached the tracker with a 200 exactly once after the restart.
    after = tracker.requests[failed_before:]
    assert sorted(r.query[0][1] for r in after) == [f"k{i}" for i in range(5)]


async def test_two_processes_never_send_twice(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection, tracker: Tracker
) -> None:
    servers = [
        ServerProcess(tmp_path / f"data{i}", database_url=pg_url, extra=serve_args(poll_s="0.05"))
        for i in range(2)
    ]
    await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
    try:
        endpoint = await api(
            servers[0].url, "POST", "/api/endpoints",
            json={"name": "two", "settings": {"forward_url": tracker.url("/pb?c={click_id}")}},
        )  # fmt: skip
        # Let both caches learn the endpoint (NOTIFY), then fire at both processes.
        await asyncio.sleep(0.3)
        hit_ids: list[str] = []

        async def fire(i: int) -> None:
            url = f"{servers[i % 2].capture_url}/p/{endpoint['token']}?click_id=t{i}"
            async with aiohttp.ClientSession() as s, s.get(url) as resp:
                assert resp.status == 200
                hit_ids.append(resp.headers[HIT_ID])

        await asyncio.gather(*(fire(i) for i in range(200)))
        await eventually(lambda: len(tracker.requests) >= 200, timeout_s=60)
        await asyncio.sleep(0.5)
        assert Counter(r.header(HIT_ID) for r in tracker.requests) == Counter(hit_ids)
        # Queue them all again as rows neither process wrote: both pollers race for them.
        await db.execute(
            "UPDATE forward_outbox SET state = 'pending', attempts = 0, next_attempt_at = now()"
        )
        await eventually(lambda: len(tracker.requests) >= 400, timeout_s=60)
        await asyncio.sleep(1.0)
    finally:
        for server in servers:
            assert await asyncio.to_thread(server.stop) == 0
    counts = Counter(r.header(HIT_ID) for r in tracker.requests)
    assert set(counts) == set(hit_ids)
    # Each hit twice: once after capture, once from the re-queued row; never more.
    assert set(counts.values()) == {2}
