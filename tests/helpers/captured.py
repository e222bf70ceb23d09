"""Hits sent through the real capture listener and read back through the API: the
round trip the detection tests (statuses, payouts) make for each hit."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import CaptureClient, capture_path
from tests.helpers.auth import AUTH


async def send(capture: CaptureClient, endpoint: dict[str, Any], query: str) -> str:
    """GET ``query`` to the endpoint's capture URL; the stored hit's id."""
    resp = await capture.get(f"{capture_path(endpoint)}?{query}")
    assert resp.status == 200
    return resp.headers["X-Postback-Monitor-Hit-Id"]


async def hit(client: TestClient, hit_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/hits/{hit_id}", headers=AUTH)
    assert resp.status == 200
    return await resp.json()


async def flags(client: TestClient, hit_id: str) -> list[str]:
    """The names of the flags the hit was stored with."""
    return [f["flag"] for f in (await hit(client, hit_id))["flags"]]
