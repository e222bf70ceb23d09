"""Several machines, one database (issue #18): two `serve` processes with their own data
directories on one DATABASE_URL, as two machines behind a load balancer would run.

A node keeps nothing of its own but its spool: an endpoint made through one is
captured by the other within a second, a click id sent to both at once is a
duplicate exactly once, one node's live view shows the other's hits, each node's
metrics say which node they are, `--workers` works inside a node, and a node killed
under load (its database path cut, so acknowledged hits wait in its spool) loses
none of them: its spool replays when it starts again.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.helpers.browser import fire, playwright_expect, sign_in
from tests.helpers.dbproxy import DatabaseProxy
from tests.helpers.load import HIT_ID_HEADER, run_load
from tests.helpers.metrics import nodes, parse, value
from tests.helpers.server import ServerProcess
from tests.helpers.server import admin_api as api
from tests.system.test_metrics_processes import served_per_worker

# The bound: an endpoint made through one node is captured by another within it.
NOTICE_S = 1.0
ROUNDS = 20  # click ids sent to both nodes at once
GET = "postback_monitor_hits_total"
# Node b's commits give up soon once its database path is cut: its hits go to the spool.
B_ARGS = ("--commit-timeout-s", "2")


def node(tmp_path: Path, name: str, database_url: str, *extra: str, **ports: int) -> ServerProcess:
    """A machine: its own data directory (spool, server.json), the shared database."""
    args = ["--node-name", f"node-{name}", *extra]
    return ServerProcess(tmp_path / name, database_url=database_url, extra=args, **ports)


async def scrape(server: ServerProcess) -> str:
    """/metrics on a new connection each time, so with --workers any worker answers."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(server.url + "/metrics") as resp:
            assert resp.status == 200
            return await resp.text()


async def knows(server: ServerProcess, endpoint_id: int) -> bool:
    """The answering process's endpoint cache holds the endpoint (the info series is
    read from it at scrape)."""
    return any(
        name == "postback_monitor_endpoint_info" and ("endpoint", str(endpoint_id)) in labels
        for name, labels in parse(await scrape(server))
    )


async def capture(session: aiohttp.ClientSession, server: ServerProcess, path: str) -> str:
    async with session.get(server.capture_url + path) as resp:
        assert resp.status == 200, await resp.text()
        return resp.headers[HIT_ID_HEADER]


async def test_two_nodes_share_endpoints_duplicates_and_the_live_view(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection, page: Any
) -> None:
    a = node(tmp_path, "a", pg_url)
    b = node(tmp_path, "b", pg_url, "--workers", "2")
    b.env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom-b")
    await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
    try:
        await asyncio.to_thread(b.wait_listening_workers, 2)
        sent = {"a": 0, "b": 0}

        # Made through A; B's cache hears of it by NOTIFY (no capture has asked B yet).
        endpoint = await api(a.url, "POST", "/api/endpoints", json={"name": "shared"})
        created = time.monotonic()
        while not await knows(b, endpoint["id"]):
            assert time.monotonic() - created < NOTICE_S, "node b never heard of the endpoint"
            await asyncio.sleep(0.01)
        noticed_s = time.monotonic() - created
        path = f"/p/{endpoint['token']}"
        async with aiohttp.ClientSession() as session:
            await capture(session, b, f"{path}?click_id=first-on-b")
        captured_s = time.monotonic() - created
        sent["b"] += 1
        print(
            f"endpoint made on node a: in node b's cache after {noticed_s * 1000:.0f} ms, "
            f"its first hit captured by node b after {captured_s * 1000:.0f} ms"
        )
        assert captured_s < NOTICE_S

        # The same click id to both nodes at once, ROUNDS times: one original each.
        async with aiohttp.ClientSession() as session:
            pairs = await asyncio.gather(
                *(
                    asyncio.gather(
                        capture(session, a, f"{path}?click_id=both-{i}&payout=1"),
                        capture(session, b, f"{path}?click_id=both-{i}&payout=1"),
                    )
                    for i in range(ROUNDS)
                )
            )
        sent["a"] += ROUNDS
        sent["b"] += ROUNDS
        rows = await db.fetch(
            "SELECT id::text, click_id, flags FROM hits WHERE click_id LIKE 'both-%'"
        )
        by_id = {r["id"]: r for r in rows}
        originals_on_a = 0
        for on_a, on_b in pairs:
            flags = {hit_id: [f["flag"] for f in by_id[hit_id]["flags"]] for hit_id in (on_a, on_b)}
            assert sorted(flags.values()) == [[], ["duplicate_click_id"]], flags
            (duplicate,) = [h for h in (on_a, on_b) if flags[h]]
            (original,) = [h for h in (on_a, on_b) if not flags[h]]
            assert by_id[duplicate]["flags"][0]["first_hit_id"] == original
            originals_on_a += original == on_a
        print(f"{ROUNDS} click ids sent to both nodes at once: the original on node a "
              f"{originals_on_a} times, on node b {ROUNDS - originals_on_a}")  # fmt: skip

        # A's live view shows a hit that B captured.
        expect = playwright_expect()
        await sign_in(page, a.url, f"/endpoints/{endpoint['id']}")
        await expect(page.locator("#live-state")).to_have_text("live")
        live = await fire(f"{b.capture_url}{path}?click_id=live-on-b")
        sent["b"] += 1
        await expect(page.locator(f'tr[data-hit-id="{live}"]')).to_be_visible()

        # --workers inside node b: both workers capture (rounds until both have).
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            for n in range(20):
                if len([c for c in served_per_worker(tmp_path / "prom-b") if c > 0]) == 2:
                    break
                await asyncio.gather(
                    *(capture(s, b, f"{path}?click_id=w{n}-{i}") for i in range(20))
                )
                sent["b"] += 20
        served = served_per_worker(tmp_path / "prom-b")
        assert len([c for c in served if c > 0]) == 2, served

        # Each node counts what it stored, under its own node label; B sums its workers.
        texts = {"a": await scrape(a), "b": await scrape(b)}
        ep = str(endpoint["id"])
        for name, text in texts.items():
            assert nodes(text) == {f"node-{name}"}
            assert value(parse(text), GET, endpoint=ep, method="GET") == sent[name]
        duplicates = [
            value(parse(text), "postback_monitor_duplicates_total", endpoint=ep)
            for text in texts.values()
        ]
        assert sum(duplicates) == ROUNDS, duplicates
        stored = await db.fetchval(
            "SELECT count(*) FROM hits WHERE endpoint_id = $1", endpoint["id"]
        )
        assert stored == sum(sent.values())
    finally:
        await asyncio.gather(asyncio.to_thread(a.stop), asyncio.to_thread(b.stop))


async def test_a_node_killed_under_load_loses_no_acknowledged_hit(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    proxy = await DatabaseProxy(pg_url).start()  # node b's only way to the database
    a = node(tmp_path, "a", pg_url)
    b = node(tmp_path, "b", proxy.url, *B_ARGS)
    await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
    restarted: ServerProcess | None = None
    try:
        to_a = await api(a.url, "POST", "/api/endpoints", json={"name": "to-a"})
        to_b = await api(a.url, "POST", "/api/endpoints", json={"name": "to-b"})
        stop = asyncio.Event()
        loads = [
            asyncio.create_task(run_load(f"{a.capture_url}/p/{to_a['token']}", stop, workers=4)),
            asyncio.create_task(run_load(f"{b.capture_url}/p/{to_b['token']}", stop, workers=8)),
        ]
        await asyncio.sleep(1.0)
        proxy.cut()  # node b alone loses the database: it acknowledges from its spool
        await asyncio.sleep(2.5)
        b.signal(signal.SIGKILL)
        await asyncio.to_thread(b.wait)
        stop.set()
        on_a, on_b = await asyncio.gather(*loads)
        print(f"node a: {on_a.summary()}; node b (killed): {on_b.summary()}")
        assert on_b.acknowledged, on_b.summary()
        spooled = list((tmp_path / "b" / "spool").glob("*.spool"))
        assert spooled, "node b spooled nothing: the cut did not reach it"
        assert "writer.spooling" in b.log()
        assert on_a.errors == 0 and set(on_a.statuses) == {200}, on_a.summary()

        acknowledged_b = [uuid.UUID(h) for h in on_b.acknowledged]
        in_database = await db.fetchval(
            "SELECT count(*) FROM hits WHERE id = ANY($1::uuid[])", acknowledged_b
        )
        assert in_database < len(acknowledged_b), "no acknowledged hit waited in the spool"
        proxy.restore()
        restarted = node(
            tmp_path, "b", proxy.url, *B_ARGS, port=b.port, capture_port=b.capture_port
        )
        await asyncio.to_thread(restarted.start)
        assert "spool.drained" in restarted.log()
        print(f"node b: {len(acknowledged_b) - in_database} acknowledged hits were only in its "
              "spool when it was killed")  # fmt: skip
        assert not list((tmp_path / "b" / "spool").glob("*.spool"))
    finally:
        await asyncio.gather(
            asyncio.to_thread(a.stop),
            asyncio.to_thread(b.kill),
            *([asyncio.to_thread(restarted.stop)] if restarted else []),
        )
        await proxy.close()

    acknowledged = [uuid.UUID(h) for h in on_a.acknowledged + on_b.acknowledged]
    assert len(on_b.acknowledged) > 20, on_b.summary()
    counts = dict(
        await db.fetch(
            "SELECT id, count(*) FROM hits WHERE id = ANY($1::uuid[]) GROUP BY id", acknowledged
        )
    )
    lost = [h for h in acknowledged if h not in counts]
    twice = {h: n for h, n in counts.items() if n != 1}
    assert not lost, f"{len(lost)} acknowledged hits lost"
    assert not twice, f"stored more than once: {twice}"
