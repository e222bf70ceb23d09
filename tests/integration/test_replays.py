"""Forward state on listed hits, its filter, and bulk replay of a filtered set (issue #14
item 10): the API in process against a local tracker."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.server.app import create_app
from tests.conftest import AUTH, CaptureClient, capture_path
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


async def capture_hit(capture: CaptureClient, endpoint: dict[str, Any], query: str) -> str:
    resp = await capture.get(capture_path(endpoint) + query)
    assert resp.status == 200
    return resp.headers[HIT_ID]


async def listed(client: TestClient, endpoint_id: int, **query: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/endpoints/{endpoint_id}/hits", params=query, headers=AUTH)
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def settled(client: TestClient, endpoint_id: int, count: int) -> None:
    """Wait until ``count`` hits of the endpoint have left the pending state."""
    for _ in range(300):
        items = await listed(client, endpoint_id)
        if len(items) == count and all(h["forward_state"] != "pending" for h in items):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"forwards still pending: {[h['forward_state'] for h in items]}")


async def failed_then_delivered(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> tuple[dict[str, Any], list[str], list[str]]:
    """An endpoint whose first three hits failed (503, one attempt) and next two were
    delivered."""
    endpoint = await make_endpoint(
        settings={"forward_url": tracker.url("/pb?c={click_id}"), "forward_max_attempts": 1}
    )
    tracker.default = 503
    failed = [await capture_hit(capture, endpoint, f"?click_id=f{i}") for i in range(3)]
    await settled(client, endpoint["id"], 3)
    tracker.default = 200
    delivered = [await capture_hit(capture, endpoint, f"?click_id=d{i}") for i in range(2)]
    await settled(client, endpoint["id"], 5)
    return endpoint, failed, delivered


async def test_hits_carry_their_forward_state_and_filter_by_it(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    endpoint, failed, delivered = await failed_then_delivered(
        client, capture, make_endpoint, tracker
    )
    ident = endpoint["id"]
    assert {h["id"] for h in await listed(client, ident, forward_state="failed")} == set(failed)
    assert {h["id"] for h in await listed(client, ident, forward_state="delivered")} == set(
        delivered
    )
    assert await listed(client, ident, forward_state="pending") == []
    assert await listed(client, ident, forward_state="none") == []
    assert len(await listed(client, ident, forward_state="")) == 5  # empty: any
    # Combined with the other filters, and on a single hit.
    [one] = await listed(client, ident, forward_state="failed", click_id="f1")
    assert one["id"] == failed[1] and one["forward_state"] == "failed"
    resp = await client.get(f"/api/hits/{delivered[0]}", headers=AUTH)
    assert (await resp.json())["forward_state"] == "delivered"

    # An endpoint without a target: null state, found by "none".
    plain = await make_endpoint(name="plain")
    plain_hit = await capture_hit(capture, plain, "?click_id=p")
    [hit] = await listed(client, plain["id"], forward_state="none")
    assert hit["id"] == plain_hit and hit["forward_state"] is None

    resp = await client.get(
        f"/api/endpoints/{ident}/hits", params={"forward_state": "lost"}, headers=AUTH
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_query" and "forward_state" in error["message"]

    # The export takes the filter and carries the state.
    resp = await client.get(
        f"/api/endpoints/{ident}/export", params={"forward_state": "failed"}, headers=AUTH
    )
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert {h["id"] for h in lines} == set(failed)
    assert {h["forward_state"] for h in lines} == {"failed"}
    resp = await client.get(
        f"/api/endpoints/{ident}/export", params={"format": "csv"}, headers=AUTH
    )
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert sorted(r["forward_state"] for r in rows) == ["delivered"] * 2 + ["failed"] * 3


async def wait_finished(client: TestClient, job_id: str) -> dict[str, Any]:
    for _ in range(300):
        resp = await client.get(f"/api/replays/{job_id}", headers=AUTH)
        assert resp.status == 200, await resp.text()
        job: dict[str, Any] = await resp.json()
        if job["state"] == "finished":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"replay still running: {job}")


async def test_bulk_replay_of_failed_forwards_delivers_them(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    endpoint, failed, _ = await failed_then_delivered(client, capture, make_endpoint, tracker)
    ident = endpoint["id"]
    before = len(tracker.requests)
    resp = await client.post(
        f"/api/endpoints/{ident}/replays", json={"forward_state": "failed"}, headers=AUTH
    )
    assert resp.status == 202, await resp.text()
    job = await resp.json()
    assert resp.headers["Location"] == f"/api/replays/{job['id']}"
    assert (job["endpoint_id"], job["total"], job["capped"]) == (ident, 3, False)
    assert job["filters"] == {"forward_state": "failed"}
    job = await wait_finished(client, job["id"])
    assert (job["done"], job["succeeded"], job["failed"]) == (3, 3, 0)
    assert job["finished_at"] is not None
    # Only the failed hits went out again, oldest first, to the forward target.
    sent = tracker.requests[before:]
    assert [r.query for r in sent] and {r.header(HIT_ID) for r in sent} == set(failed)
    assert sorted(r.query[0][1] for r in sent) == ["f0", "f1", "f2"]
    # They are delivered now: the failed list the operator worked through is empty.
    assert await listed(client, ident, forward_state="failed") == []
    assert len(await listed(client, ident, forward_state="delivered")) == 5
    resp = await client.get(f"/api/hits/{failed[0]}/forwards", headers=AUTH)
    kinds = [a["kind"] for a in (await resp.json())["items"]]
    assert kinds == ["forward", "replay"]

    # Nothing matches now: a job with nothing to do finishes at once.
    resp = await client.post(
        f"/api/endpoints/{ident}/replays",
        json={"forward_state": "failed", "since": "2020-01-01T00:00:00Z", "flag": []},
        headers=AUTH,
    )
    assert resp.status == 202
    assert (await resp.json())["state"] == "finished"


async def test_bulk_replay_counts_failures_and_runs_once_per_endpoint(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    endpoint, failed, _ = await failed_then_delivered(client, capture, make_endpoint, tracker)
    ident = endpoint["id"]
    tracker.default, tracker.delay_s = 500, 0.3
    resp = await client.post(
        f"/api/endpoints/{ident}/replays", json={"forward_state": "failed"}, headers=AUTH
    )
    job = await resp.json()
    # A second click while the first runs would send every hit twice.
    resp = await client.post(f"/api/endpoints/{ident}/replays", json={}, headers=AUTH)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "replay_running"
    running = await (await client.get(f"/api/replays/{job['id']}", headers=AUTH)).json()
    assert running["state"] == "running" and running["done"] < 3
    job = await wait_finished(client, job["id"])
    assert (job["done"], job["succeeded"], job["failed"]) == (3, 0, 3)
    assert {h["id"] for h in await listed(client, ident, forward_state="failed")} == set(failed)

    # Two requests at the same moment: one starts, the other is refused.
    url = f"/api/endpoints/{ident}/replays"
    answers = await asyncio.gather(*(client.post(url, json={}, headers=AUTH) for _ in range(2)))
    assert sorted(r.status for r in answers) == [202, 409]
    started = next(r for r in answers if r.status == 202)
    await wait_finished(client, (await started.json())["id"])
    await eventually(lambda: tracker.in_flight == 0)


async def test_one_bulk_replay_per_endpoint_across_processes(
    client: TestClient,
    capture: CaptureClient,
    make_endpoint: Any,
    tracker: Tracker,
    aiohttp_client: Any,
    config: Config,
) -> None:
    """Another worker or node (here a second app on the same database) refuses a
    replay of an endpoint while one runs anywhere, and takes it once that one ends."""
    other = await aiohttp_client(create_app(config))
    endpoint, _, _ = await failed_then_delivered(client, capture, make_endpoint, tracker)
    url = f"/api/endpoints/{endpoint['id']}/replays"
    tracker.default, tracker.delay_s = 500, 0.3
    resp = await client.post(url, json={"forward_state": "failed"}, headers=AUTH)
    assert resp.status == 202
    job = await resp.json()
    resp = await other.post(url, json={"forward_state": "failed"}, headers=AUTH)
    assert resp.status == 409, await resp.text()
    assert (await resp.json())["error"]["code"] == "replay_running"
    assert (await wait_finished(client, job["id"]))["done"] == 3
    resp = await other.post(url, json={"forward_state": "failed"}, headers=AUTH)
    assert resp.status == 202, await resp.text()
    await wait_finished(other, (await resp.json())["id"])
    await eventually(lambda: tracker.in_flight == 0)


async def test_bulk_replay_refusals(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    plain = await make_endpoint(name="plain")
    await capture_hit(capture, plain, "?click_id=p")
    resp = await client.post(f"/api/endpoints/{plain['id']}/replays", json={}, headers=AUTH)
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "no_forward_target" and "forward target" in error["message"]

    target = await make_endpoint(name="t", settings={"forward_url": "http://127.0.0.1:9/pb"})
    for body, field in (
        ({"forward_state": "lost"}, "forward_state"),
        ({"flag": ["no_such_flag"]}, "flag"),
        ({"since": "yesterday"}, "since"),
        ({"flagged": "yes"}, "flagged"),
        ({"test": "yes"}, "test: true or false"),
        ({"state": "failed"}, "state"),
        ([], "object"),
    ):
        resp = await client.post(f"/api/endpoints/{target['id']}/replays", json=body, headers=AUTH)
        assert resp.status == 400, body
        assert field in (await resp.json())["error"]["message"], body
    resp = await client.post("/api/endpoints/999999/replays", json={}, headers=AUTH)
    assert resp.status == 404
    resp = await client.get("/api/replays/no-such-job", headers=AUTH)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "replay_not_found"
    resp = await client.get("/api/replays/no-such-job")
    assert resp.status == 401


async def test_a_forward_in_flight_when_its_hit_is_deleted_logs_nothing(
    client: TestClient,
    capture: CaptureClient,
    make_endpoint: Any,
    tracker: Tracker,
    db: asyncpg.Connection,
) -> None:
    """The hit is deleted while the tracker still holds its forward: the attempt that
    ends afterwards must not leave a row naming a hit that no longer exists."""
    tracker.delay_s = 1.0
    endpoint = await make_endpoint(settings={"forward_url": tracker.url("/pb?c={click_id}")})
    hit_id = await capture_hit(capture, endpoint, "?click_id=gone")
    await eventually(lambda: tracker.in_flight == 1)
    assert (await client.delete(f"/api/hits/{hit_id}", headers=AUTH)).status == 204
    await eventually(lambda: tracker.in_flight == 0)
    await asyncio.sleep(0.5)  # the forwarder records what the tracker answered
    rows = await db.fetchval(
        "SELECT (SELECT count(*) FROM forward_outbox WHERE hit_id = $1::uuid)"
        " + (SELECT count(*) FROM forward_attempts WHERE hit_id = $1::uuid)",
        hit_id,
    )
    assert rows == 0
