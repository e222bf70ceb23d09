"""Scoped API tokens made through the API with the admin token, for tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import CaptureClient, capture_path
from tests.helpers.auth import AUTH
from tests.helpers.tracker import Tracker

HIT_ID = "X-Postback-Monitor-Hit-Id"


async def make_token(
    client: TestClient, scope: str, endpoint_ids: list[int] | None = None, **fields: Any
) -> dict[str, Any]:
    """A new token's JSON, its secret in ``token``."""
    body = {"name": f"{scope} token", "scope": scope, **fields}
    if endpoint_ids is not None:
        body["endpoint_ids"] = endpoint_ids
    resp = await client.post("/api/tokens", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()
    made: dict[str, Any] = await resp.json()
    return made


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


@dataclass
class World:
    """What a path can name, for the endpoint a restricted token may see (mine) and
    for one it may not (theirs): path parameter name -> value."""

    mine: dict[str, str]
    theirs: dict[str, str]


async def one_side(
    client: TestClient, capture: CaptureClient, db: asyncpg.Connection, tracker: Tracker
) -> dict[str, str]:
    settings = {"forward_url": tracker.url("/pb"), "forward_max_attempts": 1}
    resp = await client.post(
        "/api/endpoints", json={"name": "e", "settings": settings}, headers=AUTH
    )
    endpoint = await resp.json()
    hit = (await capture.get(capture_path(endpoint) + "?click_id=c")).headers[HIT_ID]
    run = await db.fetchval(
        "INSERT INTO reconciliations (endpoint_ids, status) VALUES ($1, 'done') RETURNING id",
        [endpoint["id"]],
    )
    resp = await client.post(f"/api/endpoints/{endpoint['id']}/replays", json={}, headers=AUTH)
    assert resp.status == 202, await resp.text()
    job = (await resp.json())["id"]
    resp = await client.post(f"/api/endpoints/{endpoint['id']}/share-links", json={}, headers=AUTH)
    assert resp.status == 201, await resp.text()
    link = str((await resp.json())["id"])
    return {
        "endpoint_id": str(endpoint["id"]),
        "hit_id": hit,
        "run_id": str(run),
        "job_id": job,
        "link_id": link,
        "click_id": "c",  # both sides' hits: the timeline lists only the allowed one
    }


async def world(client: TestClient, capture: CaptureClient, db: Any, tracker: Tracker) -> World:
    """Two endpoints (forwarding to ``tracker``), each with a hit, a run, a replay job
    and a share link; a token and a notification channel (to ``tracker``)."""
    mine = await one_side(client, capture, db, tracker)
    theirs = await one_side(client, capture, db, tracker)
    other = await make_token(client, "read")
    resp = await client.post(
        "/api/channels",
        json={"name": "c", "kind": "webhook", "config": {"url": tracker.url("/alerts")}},
        headers=AUTH,
    )
    assert resp.status == 201, await resp.text()
    channel = await resp.json()
    for side in (mine, theirs):
        side["token_id"] = str(other["id"])
        side["channel_id"] = str(channel["id"])
        side["name"] = "docs.js"
    return World(mine, theirs)
