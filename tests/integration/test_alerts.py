"""Alerts end to end in one app: the evaluator on a tiny interval, a local aiohttp
server as the webhook's far end, real hits, forwards and reconciliation runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.notifying.evaluator import Evaluator
from monitor.storage.alerts import EvaluatorLock
from monitor.web.appkeys import (
    ALERTS,
    CONFIG,
    DATABASE_URL,
    ENDPOINT_CACHE,
    EVALUATOR,
    HITS,
    NOTIFIER,
    RECONCILIATIONS,
)
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.reconcile import csv_text, start
from tests.helpers.tokens import bearer, make_token
from tests.helpers.tracker import Tracker, eventually

INTERVAL_S = 0.1


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(forward_allow=("127.0.0.1",), alert_interval_s=INTERVAL_S)


async def webhook(client: TestClient, tracker: Tracker) -> int:
    body = {"name": "hook", "kind": "webhook", "config": {"url": tracker.url("/hook")}}
    resp = await client.post("/api/channels", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


def sent(tracker: Tracker) -> list[dict[str, Any]]:
    """The alert payloads the far end got, in order (the ``data`` of each webhook)."""
    return [json.loads(r.body)["data"] for r in tracker.requests if r.path == "/hook"]


async def passes(client: TestClient, more: int) -> None:
    """Wait until the app's evaluator has made ``more`` further evaluations."""
    evaluator = client.app[EVALUATOR]
    target = evaluator.passes + more
    await eventually(lambda: evaluator.passes >= target)


async def alerts_of(client: TestClient, endpoint_id: int) -> dict[str, Any]:
    resp = await client.get(f"/api/endpoints/{endpoint_id}/alerts", headers=AUTH)
    assert resp.status == 200, await resp.text()
    found: dict[str, Any] = await resp.json()
    return found


async def test_silence_fires_once_resolves_once_and_the_api_shows_both(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    channel = await webhook(client, tracker)
    alerts = {"channel_ids": [channel], "silence_after_s": 1}
    endpoint = await make_endpoint("quiet one", settings={"alerts": alerts})
    await eventually(lambda: len(sent(tracker)) == 1)
    (fired,) = sent(tracker)
    assert fired["endpoint_id"] == endpoint["id"] and fired["endpoint_name"] == "quiet one"
    assert (fired["condition"], fired["state"]) == ("silence", "firing")
    assert "never received one since it was created" in fired["message"]
    assert fired["link"] == f"{client.app[CONFIG].management_url}/endpoints/{endpoint['id']}"
    await passes(client, 5)
    assert len(sent(tracker)) == 1  # no repeats without reminder_s

    shown = await alerts_of(client, endpoint["id"])
    assert [a["condition"] for a in shown["current"]] == ["silence"] and shown["past"] == []
    assert shown["current"][0]["state"] == "firing" and shown["current"][0]["resolved_at"] is None

    # A tracker's test ping is stored, but it is no postback: the silence goes on.
    assert (await capture.get(capture_path(endpoint) + "?status=ping")).status == 200
    await passes(client, 3)
    assert len(sent(tracker)) == 1
    assert (await capture.get(capture_path(endpoint))).status == 200
    await eventually(lambda: len(sent(tracker)) == 2)
    resolved = sent(tracker)[1]
    assert (resolved["condition"], resolved["state"]) == ("silence", "resolved")
    # Quiet for an hour from now on: nothing more is sent.
    patch = {"settings": {"alerts": {"silence_after_s": "1h"}}}
    assert (
        await client.patch(f"/api/endpoints/{endpoint['id']}", json=patch, headers=AUTH)
    ).status == 200
    await passes(client, 5)
    assert len(sent(tracker)) == 2
    shown = await alerts_of(client, endpoint["id"])
    assert shown["current"] == []
    (past,) = shown["past"]
    assert past["state"] == "resolved" and past["resolved_at"] and past["sentence"]
    assert set(past) == {
        "id", "endpoint_id", "condition", "state", "fired_at", "resolved_at",
        "last_notified_at", "sentence",
    }  # fmt: skip


async def test_reminders_come_every_reminder_s_with_a_clock_passed_in(
    client: TestClient, make_endpoint: Any, tracker: Tracker
) -> None:
    """A second evaluator on the app's stores, driven by a clock the test moves (its
    lock is never asked: the test calls ``evaluate`` itself). The app's own evaluator
    is stopped first: on the real clock it would resolve what the moved clock fired."""
    await client.app[EVALUATOR].close()
    channel = await webhook(client, tracker)
    settings = {"alerts": {"channel_ids": [channel], "silence_after_s": "1h", "reminder_s": 60}}
    endpoint = await make_endpoint("reminded", settings=settings)
    app = client.app
    now = [datetime.now(UTC)]
    evaluator = Evaluator(
        lock=EvaluatorLock(app[DATABASE_URL]),
        alerts=app[ALERTS],
        hits=app[HITS],
        runs=app[RECONCILIATIONS],
        endpoints=lambda: [e for e in app[ENDPOINT_CACHE].endpoints() if e.id == endpoint["id"]],
        notifier=app[NOTIFIER],
        management_url="http://pbm.test",
        interval_s=3600,
        clock=lambda: now[0],
    )
    await evaluator.evaluate()
    assert sent(tracker) == []
    now[0] += timedelta(hours=1, seconds=1)
    await evaluator.evaluate()
    await eventually(lambda: len(sent(tracker)) == 1)
    for step_s, expected in ((30, 1), (31, 2), (10, 2), (60, 3)):
        now[0] += timedelta(seconds=step_s)
        await evaluator.evaluate()
        await eventually(lambda n=expected: len(sent(tracker)) == n)  # type: ignore[misc]
    states = [(m["state"], m["message"].startswith("Still firing")) for m in sent(tracker)]
    assert states == [("firing", False), ("firing", True), ("firing", True)]
    await evaluator.close()


async def test_flagged_and_duplicate_shares_fire_and_resolve_once_each(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    channel = await webhook(client, tracker)
    alerts = {
        "channel_ids": [channel],
        "flagged_share_above": 0.5,
        "duplicate_share_above": 0.4,
        "min_hits": 2,
    }
    settings = {"required_params": ["payout"], "alerts": alerts}
    endpoint = await make_endpoint("shares", settings=settings)
    path = capture_path(endpoint)
    for query in ("click_id=a", "click_id=a"):  # both lack payout; the second repeats a
        assert (await capture.get(f"{path}?{query}")).status == 200

    def by(state: str) -> set[str]:
        return {m["condition"] for m in sent(tracker) if m["state"] == state}

    await eventually(lambda: by("firing") == {"flagged_share", "duplicate_share"})
    for click in ("b", "c", "d"):
        assert (await capture.get(f"{path}?click_id={click}&payout=1")).status == 200
    # Now 2 of 5 flagged (40%, not above 50%) and 1 of 5 duplicates (20%).
    await eventually(lambda: by("resolved") == {"flagged_share", "duplicate_share"})
    await passes(client, 5)
    assert sorted((m["condition"], m["state"]) for m in sent(tracker)) == [
        ("duplicate_share", "firing"), ("duplicate_share", "resolved"),
        ("flagged_share", "firing"), ("flagged_share", "resolved"),
    ]  # fmt: skip


async def test_a_given_up_forward_fires_until_it_leaves_the_window(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    target = await Tracker(default=500).start()
    try:
        channel = await webhook(client, tracker)
        settings = {
            "forward_url": target.url("/pb?cid={click_id}"),
            "forward_max_attempts": 1,
            "alerts": {"channel_ids": [channel], "forwards_given_up": True, "window_s": 2},
        }
        endpoint = await make_endpoint("forwarding", settings=settings)
        assert (await capture.get(f"{capture_path(endpoint)}?click_id=x")).status == 200
        await eventually(lambda: [m["state"] for m in sent(tracker)] == ["firing"])
        assert sent(tracker)[0]["condition"] == "forwards_given_up"
        assert "1 forwards were given up" in sent(tracker)[0]["message"]
        await eventually(lambda: [m["state"] for m in sent(tracker)] == ["firing", "resolved"])
        await passes(client, 5)
        assert len(sent(tracker)) == 2
    finally:
        await target.close()


async def test_missing_postbacks_fire_on_a_run_and_resolve_on_a_newer_one(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tracker: Tracker
) -> None:
    channel = await webhook(client, tracker)
    alerts = {"channel_ids": [channel], "missing_postbacks_above": 1}
    endpoint = await make_endpoint("reconciled", settings={"alerts": alerts})
    assert (await capture.get(f"{capture_path(endpoint)}?click_id=c1")).status == 200
    options = {"endpoint_ids": [endpoint["id"]]}
    resp = await start(client, csv_text("click_id", "c1", "gone1", "gone2"), options)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["summary"]["missing_postbacks"] == 2
    await eventually(lambda: [m["state"] for m in sent(tracker)] == ["firing"])
    assert "found 2 missing postbacks (alert above 1)" in sent(tracker)[0]["message"]
    resp = await start(client, csv_text("click_id", "c1", "gone1"), options)
    assert resp.status == 201, await resp.text()
    await eventually(lambda: [m["state"] for m in sent(tracker)] == ["firing", "resolved"])
    await passes(client, 5)
    assert len(sent(tracker)) == 2


async def test_a_removed_condition_resolves_quietly_and_a_deleted_endpoint_takes_its_alerts(
    client: TestClient, make_endpoint: Any, tracker: Tracker
) -> None:
    channel = await webhook(client, tracker)
    alerts = {"channel_ids": [channel], "silence_after_s": 1}
    one = await make_endpoint("one", settings={"alerts": alerts})
    two = await make_endpoint("two", settings={"alerts": alerts})
    await eventually(lambda: len(sent(tracker)) == 2)
    patch = {"settings": {"alerts": None}}
    resp = await client.patch(f"/api/endpoints/{one['id']}", json=patch, headers=AUTH)
    assert resp.status == 200
    await eventually(lambda: client.app[EVALUATOR].passes > 0)
    await passes(client, 5)
    shown = await alerts_of(client, one["id"])
    assert shown["current"] == [] and [a["state"] for a in shown["past"]] == ["resolved"]
    assert (await client.delete(f"/api/endpoints/{two['id']}", headers=AUTH)).status == 200
    await passes(client, 5)
    assert len(sent(tracker)) == 2  # neither change sent a "resolved"
    assert await client.app[ALERTS].firing() == []


async def test_unknown_channels_are_refused_at_save_and_tokens_see_only_their_endpoints(
    client: TestClient, make_endpoint: Any, tracker: Tracker
) -> None:
    channel = await webhook(client, tracker)
    body = {"name": "x", "settings": {"alerts": {"channel_ids": [channel, 999]}}}
    resp = await client.post("/api/endpoints", json=body, headers=AUTH)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "unknown_channel" and "999" in error["message"]
    mine = await make_endpoint("mine")
    theirs = await make_endpoint("theirs")
    patch = {"settings": {"alerts": {"channel_ids": [998]}}}
    resp = await client.patch(f"/api/endpoints/{mine['id']}", json=patch, headers=AUTH)
    assert resp.status == 400 and "alerts.channel_ids" in (await resp.json())["error"]["message"]
    bad = {"settings": {"alerts": {"channel_ids": "1"}}}
    resp = await client.patch(f"/api/endpoints/{mine['id']}", json=bad, headers=AUTH)
    assert resp.status == 400 and "alerts.channel_ids" in (await resp.json())["error"]["message"]

    token = bearer(await make_token(client, "read", [mine["id"]]))
    resp = await client.get(f"/api/endpoints/{mine['id']}/alerts", headers=token)
    assert resp.status == 200 and await resp.json() == {"current": [], "past": []}
    resp = await client.get(f"/api/endpoints/{theirs['id']}/alerts", headers=token)
    assert resp.status == 404
    assert (await client.get("/api/endpoints/9999/alerts", headers=AUTH)).status == 404


async def test_a_lost_lock_connection_is_taken_again_without_crashing(
    client: TestClient, make_endpoint: Any, tracker: Tracker, db: Any
) -> None:
    await eventually(lambda: client.app[EVALUATOR].lock.held)
    killed = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name LIKE 'postback-monitor alerts pid=%'"
    )
    assert killed == 1
    channel = await webhook(client, tracker)
    alerts = {"channel_ids": [channel], "silence_after_s": 1}
    endpoint = await make_endpoint("after the loss", settings={"alerts": alerts})
    await eventually(lambda: [m["endpoint_id"] for m in sent(tracker)] == [endpoint["id"]])
    assert client.app[EVALUATOR].lock.held
