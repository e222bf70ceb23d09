"""Forwarding in process: the outbox, retries, give-up, concurrency, replay, metrics.
(Its pure rules: tests/unit/test_forward_rules.py; restarts and two processes:
tests/system/test_forward_processes.py.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.model.hit import Hit
from monitor.server.app import create_app
from monitor.web.appkeys import WRITER
from tests.conftest import AUTH, CaptureClient, capture_path, open_capture
from tests.helpers.tracker import Tracker, eventually

HIT_ID = "X-Postback-Monitor-Hit-Id"


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(
        forward_allow=("127.0.0.1",),
        forward_backoff_s=0.05,
        forward_backoff_max_s=0.2,
        forward_poll_s=0.1,
        outbound_timeout_s=5.0,
    )


async def forwards(client: TestClient, hit_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/hits/{hit_id}/forwards", headers=AUTH)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def capture_hit(capture: CaptureClient, endpoint: dict[str, Any], query: str = "") -> str:
    resp = await capture.get(capture_path(endpoint) + query)
    assert resp.status == 200
    return resp.headers[HIT_ID]


async def test_endpoint_api_rejects_bad_forward_settings(make_endpoint: Any, client: Any) -> None:
    resp = await client.post(
        "/api/endpoints",
        json={"name": "x", "settings": {"forward_url": "http://t.example/{a"}},
        headers=AUTH,
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_settings"


# ------------------------------------------------------------------ in process


async def test_happy_path_delivers_exactly_once(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    template = tracker.url("/pb") + "?cid={click_id}&p={payout}&x={missing}"
    endpoint = await make_endpoint(settings={"forward_url": template})
    hit_id = await capture_hit(capture, endpoint, "?click_id=a%20b&payout=1.5")
    await eventually(lambda: len(tracker.requests) == 1)
    await asyncio.sleep(0.5)
    assert len(tracker.requests) == 1
    got = tracker.requests[0]
    assert (got.method, got.path) == ("GET", "/pb")
    assert got.query == [("cid", "a b"), ("p", "1.5"), ("x", "")]
    assert got.header(HIT_ID) == hit_id
    doc = await forwards(client, hit_id)
    assert doc["forward"]["state"] == "delivered" and doc["forward"]["attempts"] == 1
    [attempt] = doc["items"]
    assert attempt["kind"] == "forward" and attempt["status"] == 200 and attempt["ok"]
    assert attempt["response_head"] == "tracker says 200"
    assert attempt["latency_ms"] > 0 and attempt["error"] is None
    assert [f["param"] for f in attempt["flags"]] == ["missing"]


async def test_retries_until_success(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    tracker.statuses = [500, 500]
    endpoint = await make_endpoint(settings={"forward_url": tracker.url("/pb?c={click_id}")})
    hit_id = await capture_hit(capture, endpoint, "?click_id=r1")

    async def delivered() -> bool:
        return (await forwards(client, hit_id))["forward"]["state"] == "delivered"

    for _ in range(100):
        if await delivered():
            break
        await asyncio.sleep(0.05)
    doc = await forwards(client, hit_id)
    assert [a["status"] for a in doc["items"]] == [500, 500, 200]
    assert [a["attempt"] for a in doc["items"]] == [1, 2, 3]
    assert len(tracker.requests) == 3
    assert {r.header(HIT_ID) for r in tracker.requests} == {hit_id}


async def test_gives_up_after_max_attempts(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    tracker.default = 503
    endpoint = await make_endpoint(
        settings={"forward_url": tracker.url("/pb"), "forward_max_attempts": 3}
    )
    hit_id = await capture_hit(capture, endpoint, "?click_id=g1")
    await eventually(lambda: len(tracker.requests) >= 3)
    await asyncio.sleep(0.6)  # well past the longest backoff: nothing more is sent
    assert len(tracker.requests) == 3
    doc = await forwards(client, hit_id)
    assert doc["forward"]["state"] == "failed" and doc["forward"]["next_attempt_at"] is None
    assert [a["status"] for a in doc["items"]] == [503, 503, 503]


async def test_refused_target_fails_at_once(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(settings={"forward_url": "http://10.0.0.1/pb"})
    hit_id = await capture_hit(capture, endpoint, "?click_id=s1")
    for _ in range(100):
        doc = await forwards(client, hit_id)
        if doc["forward"]["state"] != "pending":
            break
        await asyncio.sleep(0.05)
    assert doc["forward"]["state"] == "failed"
    [attempt] = doc["items"]
    assert attempt["status"] is None
    assert attempt["error"].startswith("refused: 10.0.0.1 is a private address")


async def test_flagged_hits_are_skipped_when_asked(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    endpoint = await make_endpoint(
        settings={"forward_url": tracker.url("/pb?c={click_id}"), "forward_flagged": False}
    )
    first = await capture_hit(capture, endpoint, "?click_id=d1&event=sale")
    duplicate = await capture_hit(capture, endpoint, "?click_id=d1&event=sale")
    macro = await capture_hit(capture, endpoint, "?click_id={clickid}")
    await eventually(lambda: len(tracker.requests) == 1)
    await asyncio.sleep(0.4)
    assert [r.header(HIT_ID) for r in tracker.requests] == [first]
    for skipped in (duplicate, macro):
        assert (await forwards(client, skipped)) == {
            "hit_id": skipped,
            "forward": None,
            "items": [],
        }


async def test_passthrough_relays_method_path_query_body_and_headers(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    endpoint = await make_endpoint(
        settings={"forward_url": tracker.url("/base/?k=1"), "forward_mode": "passthrough"}
    )
    resp = await capture.post(
        capture_path(endpoint) + "/conv/v2?click_id=p1&x=%7Bz%7D",
        data=b"payout=2.5&currency=EUR",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "net/1"},
    )
    assert resp.status == 200
    await eventually(lambda: len(tracker.requests) == 1)
    got = tracker.requests[0]
    assert (got.method, got.path) == ("POST", "/base/conv/v2")
    assert got.query == [("k", "1"), ("click_id", "p1"), ("x", "{z}")]
    assert got.body == b"payout=2.5&currency=EUR"
    assert got.header("content-type") == "application/x-www-form-urlencoded"
    assert got.header("user-agent") == "net/1"
    assert got.header("x-forwarded-for") == "127.0.0.1"
    assert endpoint["token"] not in got.path


async def test_per_endpoint_concurrency_limit(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker, config: Config
) -> None:
    assert config.forward_concurrency == 4
    tracker.delay_s = 0.3
    endpoint = await make_endpoint(settings={"forward_url": tracker.url("/slow")})
    await asyncio.gather(*(capture_hit(capture, endpoint, f"?click_id=c{i}") for i in range(12)))
    await eventually(lambda: len(tracker.requests) == 12 and tracker.in_flight == 0)
    assert tracker.max_in_flight == 4


async def test_replay_to_the_target_and_to_a_url_given_now(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    endpoint = await make_endpoint(settings={"forward_url": tracker.url("/pb?c={click_id}")})
    hit_id = await capture_hit(capture, endpoint, "?click_id=rp1&payout=3")
    await eventually(lambda: len(tracker.requests) == 1)

    resp = await client.post(f"/api/hits/{hit_id}/replay", headers=AUTH)
    assert resp.status == 200, await resp.text()
    replay = await resp.json()
    assert (replay["kind"], replay["attempt"], replay["status"]) == ("replay", 1, 200)
    resp = await client.post(
        f"/api/hits/{hit_id}/replay",
        json={"url": tracker.url("/other?amount={payout}")},
        headers=AUTH,
    )
    other = await resp.json()
    assert (other["attempt"], other["url"]) == (2, tracker.url("/other?amount=3"))
    assert [(r.path, r.query) for r in tracker.requests] == [
        ("/pb", [("c", "rp1")]),
        ("/pb", [("c", "rp1")]),
        ("/other", [("amount", "3")]),
    ]
    doc = await forwards(client, hit_id)
    assert [a["kind"] for a in doc["items"]] == ["forward", "replay", "replay"]
    assert doc["forward"]["attempts"] == 1  # replays leave the outbox alone

    # A hit of an endpoint without a target needs a URL; replays pass the guard too.
    plain = await make_endpoint(name="plain")
    plain_hit = await capture_hit(capture, plain, "?click_id=z")
    resp = await client.post(f"/api/hits/{plain_hit}/replay", headers=AUTH)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "no_forward_target"
    resp = await client.post(
        f"/api/hits/{plain_hit}/replay",
        json={"url": "http://169.254.169.254/latest/meta-data/"},
        headers=AUTH,
    )
    refused = await resp.json()
    assert refused["status"] is None and refused["error"].startswith("refused:")
    resp = await client.post(f"/api/hits/{uuid.uuid4()}/replay", headers=AUTH)
    assert resp.status == 404
    resp = await client.get(f"/api/hits/{uuid.uuid4()}/forwards", headers=AUTH)
    assert resp.status == 404


async def test_outbox_insert_is_idempotent(
    client: TestClient,
    capture: CaptureClient,
    make_endpoint: Any,
    tracker: Tracker,
    db: asyncpg.Connection,
) -> None:
    """A replayed batch (spool) runs the hook again: still one outbox row per hit."""
    from monitor.forwarding.outbox import INSERT_OUTBOX

    endpoint = await make_endpoint(settings={"forward_url": tracker.url("/pb")})
    hit_id = uuid.UUID(await capture_hit(capture, endpoint, "?click_id=i1"))
    row = await db.fetchrow("SELECT * FROM forward_outbox WHERE hit_id = $1", hit_id)
    await db.execute(INSERT_OUTBOX, [endpoint["id"]], [hit_id], [row["hit_received_at"]])
    assert await db.fetchval("SELECT count(*) FROM forward_outbox") == 1


async def test_each_batch_in_flight_wakes_the_forwarder_for_its_own_rows(
    aiohttp_client: Any, config: Config, db: asyncpg.Connection, tracker: Tracker
) -> None:
    """Two batches in flight, both with outbox rows, the second committing after the
    forwarder has sent the first's: its commit must wake the forwarder too, or its
    forward waits for the poll interval (30 s here)."""
    slow_poll = config.replace(forward_poll_s=30.0)
    client = await aiohttp_client(create_app(slow_poll))
    async with open_capture(client, slow_poll) as capture:
        resp = await client.post(
            "/api/endpoints", headers=AUTH,
            json={"name": "w", "settings": {"forward_url": tracker.url("/pb?c={click_id}")}},
        )  # fmt: skip
        endpoint = await resp.json()
        open_s = {"first": 0.3, "second": 1.5}

        async def keep_open(_conn: asyncpg.Connection, hits: Sequence[Hit]) -> None:
            # Runs after the forwarder's hook: both batches insert their outbox rows
            # before the first commits, and the second commits well after the first.
            await asyncio.sleep(max(open_s.get(hit.verdict.click_id or "", 0.0) for hit in hits))

        client.app[WRITER].transaction_hooks.append(keep_open)

        async def second() -> str:
            await asyncio.sleep(0.1)  # a batch of its own, started while the first is open
            return await capture_hit(capture, endpoint, "?click_id=second")

        await asyncio.gather(capture_hit(capture, endpoint, "?click_id=first"), second())
        await eventually(lambda: len(tracker.requests) == 2, timeout_s=5.0)
        assert sorted(r.query[0][1] for r in tracker.requests) == ["first", "second"]


async def test_forward_outcomes_are_counted_in_metrics(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    async def outcomes(endpoint_id: int) -> dict[str, float]:
        text = await (await client.get("/metrics")).text()
        return {
            s.labels["outcome"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "postback_monitor_forwards_total"
            and s.labels["endpoint"] == str(endpoint_id)
        }

    tracker.statuses = [500, 500]
    endpoint = await make_endpoint(settings={"forward_url": tracker.url("/pb?c={click_id}")})
    # Counted from before the hit: only what forwarding it adds is compared.
    before = await outcomes(endpoint["id"])
    hit_id = await capture_hit(capture, endpoint, "?click_id=m1")
    for _ in range(100):
        if (await forwards(client, hit_id))["forward"]["state"] == "delivered":
            break
        await asyncio.sleep(0.05)
    after = await outcomes(endpoint["id"])
    counted = {k: after.get(k, 0) - before.get(k, 0) for k in ("retrying", "delivered", "failed")}
    assert counted == {"retrying": 2, "delivered": 1, "failed": 0}
