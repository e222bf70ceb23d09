"""One alert evaluator per deployment: two real `serve` processes on one database
send each alert once, and when the one holding the evaluator lock dies the other
takes over within an interval."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from monitor.storage.alerts import EVALUATOR_LOCK_KEY
from tests.helpers.server import ServerProcess
from tests.helpers.server import admin_api as api
from tests.helpers.tracker import Tracker, eventually

INTERVAL_S = "0.5"
ARGS = ["--alert-interval-s", INTERVAL_S, "--forward-allow", "127.0.0.1"]
HOLDER = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
    AND l.classid::bigint = $1 AND l.objid::bigint = $2"""


def firings(tracker: Tracker, endpoint_id: int) -> int:
    data = [json.loads(r.body)["data"] for r in tracker.requests]
    return sum(d["endpoint_id"] == endpoint_id and d["state"] == "firing" for d in data)


async def stays(check: Callable[[], bool], for_s: float) -> None:
    """``check()`` holds every time it is looked at for ``for_s`` seconds."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        assert check()
        await asyncio.sleep(0.05)
    assert check()


async def holder_pid(db: asyncpg.Connection) -> int:
    """The pid of the serve process holding the evaluator lock, from the application
    name of its lock connection ("postback-monitor alerts pid=N")."""
    found: list[str] = []

    async def look() -> bool:
        rows = await db.fetch(HOLDER, EVALUATOR_LOCK_KEY >> 32, EVALUATOR_LOCK_KEY & 0xFFFFFFFF)
        found[:] = [r["application_name"] for r in rows]
        return len(found) == 1

    deadline = time.monotonic() + 15
    while not await look():
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)
    return int(found[0].rsplit("pid=", 1)[1])


async def test_two_processes_send_each_alert_once_and_the_survivor_takes_over(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection, tracker: Tracker
) -> None:
    servers = [
        ServerProcess(tmp_path / name, database_url=pg_url, extra=ARGS) for name in ("a", "b")
    ]
    await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
    try:
        base = servers[0].url
        channel = await api(
            base, "POST", "/api/channels",
            json={"name": "hook", "kind": "webhook", "config": {"url": tracker.url("/hook")}},
        )  # fmt: skip
        alerts = {"channel_ids": [channel["id"]], "silence_after_s": 1}
        first = await api(
            base, "POST", "/api/endpoints", json={"name": "one", "settings": {"alerts": alerts}}
        )
        await eventually(lambda: firings(tracker, first["id"]) >= 1, timeout_s=15)
        await stays(lambda: firings(tracker, first["id"]) == 1, for_s=6 * float(INTERVAL_S))

        pid = await holder_pid(db)
        (holder,) = [s for s in servers if s.proc is not None and s.proc.pid == pid]
        (survivor,) = [s for s in servers if s is not holder]
        await asyncio.to_thread(holder.kill)  # dies: its lock connection closes with it

        second = await api(
            survivor.url, "POST", "/api/endpoints",
            json={"name": "two", "settings": {"alerts": alerts}},
        )  # fmt: skip
        await eventually(lambda: firings(tracker, second["id"]) >= 1, timeout_s=5)
        await stays(lambda: firings(tracker, second["id"]) == 1, for_s=6 * float(INTERVAL_S))
        assert firings(tracker, first["id"]) == 1  # still open: not sent again
        assert survivor.proc is not None and await holder_pid(db) == survivor.proc.pid
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)
