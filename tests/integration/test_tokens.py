"""Scoped API tokens (monitor/web/api_tokens.py, web/api/tokens.py): made once and
kept only as a hash, refused at once when revoked or expired, last use recorded at
most once a minute, and what a restricted token lists."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import AUTH
from tests.helpers.reconcile import URL as RECONCILE_URL
from tests.helpers.reconcile import csv_text, upload
from tests.helpers.tokens import bearer, make_token


async def test_a_token_is_shown_once_and_stored_only_as_its_hash(
    client: TestClient, db: asyncpg.Connection
) -> None:
    made = await make_token(client, "read")
    secret = made["token"]
    assert secret.startswith("pbm_") and len(secret) >= 4 + 43
    assert made["scope"] == "read" and made["endpoint_ids"] is None and not made["revoked"]
    listed = await (await client.get("/api/tokens", headers=AUTH)).json()
    [item] = listed["items"]
    assert "token" not in item and item["name"] == "read token" and item["id"] == made["id"]
    assert secret not in await (await client.get("/api/tokens", headers=AUTH)).text()
    row = await db.fetchrow("SELECT * FROM api_tokens")
    assert secret not in repr(dict(row))
    assert row["token_hash"] == hashlib.sha256(secret.encode()).digest()
    resp = await client.get("/api/endpoints", headers=bearer(made))
    assert resp.status == 200


async def test_unknown_revoked_and_expired_tokens_are_refused(
    client: TestClient, db: asyncpg.Connection
) -> None:
    made = await make_token(client, "write")
    unknown = {"Authorization": "Bearer pbm_" + "A" * 43}
    assert (await client.get("/api/endpoints", headers=unknown)).status == 401
    assert (await client.get("/api/endpoints", headers=bearer(made))).status == 200
    resp = await client.delete(f"/api/tokens/{made['id']}", headers=AUTH)
    assert resp.status == 204
    assert (await client.get("/api/endpoints", headers=bearer(made))).status == 401
    [item] = (await (await client.get("/api/tokens", headers=AUTH)).json())["items"]
    assert item["revoked"] is True
    assert (await client.delete("/api/tokens/999", headers=AUTH)).status == 404

    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    expiring = await make_token(client, "read", expires_at=soon)
    assert expiring["expires_at"] is not None
    assert (await client.get("/api/endpoints", headers=bearer(expiring))).status == 200
    await db.execute(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
        expiring["id"],
    )
    assert (await client.get("/api/endpoints", headers=bearer(expiring))).status == 401


async def test_bad_token_fields_are_refused(client: TestClient) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body in (
        {"name": "x", "scope": "root"},
        {"name": "", "scope": "read"},
        {"scope": "read"},
        {"name": "x", "scope": "read", "endpoint_ids": [0]},
        {"name": "x", "scope": "read", "endpoint_ids": "1"},
        {"name": "x", "scope": "read", "expires_at": past},
        {"name": "x", "scope": "read", "colour": "red"},
        {"name": "x", "scope": "read", "endpoint_ids": [12345]},
    ):
        resp = await client.post("/api/tokens", json=body, headers=AUTH)
        assert resp.status == 400, body


async def test_last_use_is_recorded_at_most_once_a_minute(
    client: TestClient, db: asyncpg.Connection
) -> None:
    made = await make_token(client, "read")
    last_used = "SELECT last_used_at FROM api_tokens WHERE id = $1"
    assert await db.fetchval(last_used, made["id"]) is None
    await client.get("/api/endpoints", headers=bearer(made))
    first = await db.fetchval(last_used, made["id"])
    assert first is not None
    for _ in range(3):
        await client.get("/api/endpoints", headers=bearer(made))
    assert await db.fetchval(last_used, made["id"]) == first
    await db.execute(
        "UPDATE api_tokens SET last_used_at = now() - interval '61 seconds' WHERE id = $1",
        made["id"],
    )
    stale = await db.fetchval(last_used, made["id"])
    await client.get("/api/endpoints", headers=bearer(made))
    assert await db.fetchval(last_used, made["id"]) > stale


async def test_a_restricted_token_lists_and_reconciles_only_its_endpoints(
    client: TestClient, db: asyncpg.Connection, make_endpoint: Any
) -> None:
    mine, theirs = await make_endpoint("mine"), await make_endpoint("theirs")
    token = bearer(await make_token(client, "write", [mine["id"]]))
    listed = await (await client.get("/api/endpoints", headers=token)).json()
    assert [e["id"] for e in listed["items"]] == [mine["id"]]

    run_ids = {}
    for endpoint in (mine, theirs):
        run_ids[endpoint["id"]] = await db.fetchval(
            "INSERT INTO reconciliations (endpoint_ids, status) VALUES ($1, 'done') RETURNING id",
            [endpoint["id"]],
        )
    await db.execute(
        "INSERT INTO reconciliations (endpoint_ids, status) VALUES ($1, 'done')",
        [mine["id"], theirs["id"]],
    )
    runs = await (await client.get("/api/reconciliations", headers=token)).json()
    assert [r["id"] for r in runs["items"]] == [run_ids[mine["id"]]]
    everything = await (await client.get("/api/reconciliations", headers=AUTH)).json()
    assert len(everything["items"]) == 3

    report = csv_text("click_id", "c1")
    resp = await client.post(
        RECONCILE_URL,
        data=upload(report, {"endpoint_ids": [mine["id"], theirs["id"]]}),
        headers=token,
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "unknown_endpoints" and str(theirs["id"]) in error["message"]
    resp = await client.post(
        RECONCILE_URL, data=upload(report, {"endpoint_ids": [mine["id"]]}), headers=token
    )
    assert resp.status in (201, 202), await resp.text()


async def test_a_restricted_token_cannot_create_endpoints_or_tokens(
    client: TestClient, make_endpoint: Any
) -> None:
    mine = await make_endpoint("mine")
    admin = bearer(await make_token(client, "admin", [mine["id"]]))
    resp = await client.post("/api/endpoints", json={"name": "new"}, headers=admin)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    resp = await client.post("/api/tokens", json={"name": "x", "scope": "admin"}, headers=admin)
    assert resp.status == 403
    assert (await client.get(f"/api/endpoints/{mine['id']}", headers=admin)).status == 200
