"""The audit log's route table (monitor/web/audit.py) against the routes the app has.

Every state-changing route (not GET, not the capture listener's or a share link's
public pages) is either an action in ``ACTIONS`` or ``EXEMPT`` with a reason, and
each action, performed with the admin token on fresh things, adds its entry: a new
route that forgets the audit log fails here, naming it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.model.paths import SHARE_PREFIX
from monitor.server.app import create_app
from monitor.web.audit import ACTIONS, EXEMPT
from tests.conftest import AUTH, CaptureClient
from tests.helpers.reconcile import csv_text, upload
from tests.helpers.tokens import world
from tests.helpers.tracker import Tracker

PARAM = re.compile(r"\{(\w+)\}")
SLACK = {"webhook_url": "https://hooks.slack.com/services/T/B/x"}
CONFIRM = {"confirm": "yes"}


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(forward_allow=("127.0.0.1",))


def changing_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route that is not a read, on the management listener's
    own pages and API (share links' public pages are their own visitors')."""
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("GET", "HEAD", "*") or path.startswith(SHARE_PREFIX):
            continue
        found.add((route.method, path))
    return found


def test_every_changing_route_is_audited_or_exempt(config: Config) -> None:
    routes = changing_routes(create_app(config))
    missing = sorted(routes - ACTIONS.keys() - EXEMPT.keys())
    assert not missing, (
        "neither audited nor exempt: "
        + ", ".join(f"{m} {p}" for m, p in missing)
        + " (add it to ACTIONS or EXEMPT in monitor/web/audit.py)"
    )
    stale = sorted((ACTIONS.keys() | EXEMPT.keys()) - routes)
    assert not stale, f"audit rows for routes that do not exist: {stale}"
    assert not ACTIONS.keys() & EXEMPT.keys()
    assert all(reason.strip() for reason in EXEMPT.values())


def body_of(key: tuple[str, str], names: dict[str, str]) -> dict[str, Any]:
    """What gets each action past its handler's checks: ``json`` or ``data``."""
    endpoint = int(names["endpoint_id"])
    report = csv_text("click_id", "c1")
    api_bodies: dict[str, Any] = {
        "/api/endpoints": {"name": "made"},
        "/api/endpoints/{endpoint_id}": {"name": "renamed"},
        "/api/endpoints/{endpoint_id}/replays": {},
        "/api/hits/{hit_id}/replay": {},
        "/api/tokens": {"name": "t", "scope": "read"},
        "/api/channels": {"name": "c", "kind": "slack", "config": SLACK},
        "/api/channels/{channel_id}": {"name": "renamed"},
        "/api/channels/{channel_id}/test": {},
        "/api/endpoints/{endpoint_id}/share-links": {},
        # The world's hits come from 127.0.0.1: its /24 is known.
        "/api/endpoints/{endpoint_id}/senders/accept": {"network": "127.0.0.1"},
    }
    method, path = key
    if path == "/api/reconciliations":
        return {"data": upload(report, {"endpoint_ids": [endpoint]})}
    if path.startswith("/api/"):
        return {"json": api_bodies.get(path)} if method != "DELETE" else {}
    if path == "/reconcile":
        data = aiohttp.FormData(default_to_multipart=True)
        data.add_field("endpoint_id", str(endpoint))
        data.add_field("report", report, filename="report.csv", content_type="text/csv")
        return {"data": data}
    forms: dict[str, dict[str, str]] = {
        "/endpoints": {"name": "made"},
        "/endpoints/{endpoint_id}/settings": {"settings": '{"required_params": ["cid"]}'},
        "/endpoints/{endpoint_id}/share-links": {"days": "30"},
        "/endpoints/{endpoint_id}/senders/accept": {"network": "127.0.0.0/24"},
        "/channels": {"name": "c", "kind": "slack", **SLACK},
        "/tokens": {"name": "t", "scope": "read"},
    }
    return {"data": forms.get(path, CONFIRM)}


async def replays_finished(client: TestClient, job: str) -> None:
    """A replay job of the endpoint still running would make a new one a 409."""
    for _ in range(100):
        resp = await client.get(f"/api/replays/{job}", headers=AUTH)
        if (await resp.json())["state"] == "finished":
            return
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("key", sorted(ACTIONS), ids=" ".join)
async def test_each_action_leaves_its_entry(
    key: tuple[str, str],
    client: TestClient,
    capture: CaptureClient,
    db: asyncpg.Connection,
    tracker: Tracker,
) -> None:
    method, path = key
    names = (await world(client, capture, db, tracker)).mine
    await replays_finished(client, names["job_id"])
    url = PARAM.sub(lambda m: names[m.group(1)], path)
    count = "SELECT count(*) FROM audit_log WHERE action = $1"
    before = await db.fetchval(count, ACTIONS[key])
    resp = await client.request(
        method, url, headers=AUTH, allow_redirects=False, **body_of(key, names)
    )
    assert resp.status < 400, f"{method} {url}: {resp.status} {await resp.text()}"
    assert await db.fetchval(count, ACTIONS[key]) == before + 1, f"{method} {url} left no entry"
    row = await db.fetchrow("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")
    assert row["action"] == ACTIONS[key] and row["actor"] == "admin token"
    assert row["target"], f"{method} {url}: an entry names what it acted on"
    if "{endpoint_id}" in path or "{hit_id}" in path:
        assert row["endpoint_id"] == int(names["endpoint_id"]), f"{method} {url}: its endpoint"
