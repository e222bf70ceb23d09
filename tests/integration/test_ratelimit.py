"""Per-endpoint rate limits answer 429 with Retry-After; other endpoints are untouched."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from monitor.ratelimit import RateLimiter
from tests.conftest import AUTH, CaptureClient, capture_path


def test_token_bucket_refills_at_the_rate() -> None:
    limiter = RateLimiter()
    assert [limiter.allow(1, 2.0, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert limiter.allow(1, 2.0, now=0.5) == 0.0  # one token back after half a second
    assert limiter.allow(2, 2.0, now=0.5) == 0.0  # buckets are per endpoint
    assert RateLimiter.retry_after(0.2) == "1"


async def test_limited_endpoint_answers_429(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: Any
) -> None:
    limited = await make_endpoint("limited", settings={"rate_limit_per_s": 1})
    free = await make_endpoint("free")
    statuses = [(await capture.get(capture_path(limited) + f"?n={i}")).status for i in range(3)]
    assert statuses[0] == 200
    assert 429 in statuses[1:]
    resp = await capture.get(capture_path(limited) + "?n=again")
    if resp.status == 429:
        assert int(resp.headers["Retry-After"]) >= 1
    assert all([(await capture.get(capture_path(free))).status == 200 for _ in range(3)])
    stored = await db.fetchval("SELECT count(*) FROM hits WHERE endpoint_id = $1", limited["id"])
    assert stored == statuses.count(200) + (resp.status == 200)


async def test_rate_limit_setting_is_validated(client: TestClient) -> None:
    for bad in (0, -1, "fast", True, 2e6):
        body = {"name": "x", "settings": {"rate_limit_per_s": bad}}
        resp = await client.post("/api/endpoints", json=body, headers=AUTH)
        assert resp.status == 400
        assert "rate_limit_per_s" in (await resp.json())["error"]["message"]
