"""Web sign-in with a scoped token (issue #16 item 5): the pages show only what the
token may see and do, refuse the rest if posted anyway, and the session ends with
the token; the tokens page for admins."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import AUTH
from tests.helpers.signin import csrf_of, sign_in
from tests.helpers.tokens import bearer, make_token


async def test_a_read_token_restricted_to_one_endpoint_sees_only_it_and_changes_nothing(
    client: TestClient, make_endpoint: Any
) -> None:
    mine, theirs = await make_endpoint("mine-endpoint"), await make_endpoint("their-endpoint")
    token = await make_token(client, "read", [mine["id"]])
    csrf = await sign_in(client, token=token["token"])

    listing = await (await client.get("/endpoints")).text()
    assert "mine-endpoint" in listing and "their-endpoint" not in listing
    assert 'id="create-endpoint"' not in listing
    assert 'href="/tokens"' not in listing and 'href="/tester"' not in listing
    for path in (f"/endpoints/{theirs['id']}", f"/endpoints/{theirs['id']}/settings"):
        assert (await client.get(path)).status == 404, path
    assert (await client.get(f"/endpoints/{mine['id']}")).status == 200
    settings = await (await client.get(f"/endpoints/{mine['id']}/settings")).text()
    assert 'id="read-only"' in settings
    for form in ("settings-form", "rotate-form", "clear-form", "delete-form"):
        assert f'id="{form}"' not in settings, form
    reconcile = await (await client.get("/reconcile")).text()
    assert 'id="reconcile-form"' not in reconcile and "their-endpoint" not in reconcile

    resp = await client.post(
        f"/endpoints/{mine['id']}/delete", data={"csrf": csrf, "confirm": "yes"}
    )
    assert resp.status == 403
    assert (await client.get(f"/api/endpoints/{mine['id']}", headers=AUTH)).status == 200
    resp = await client.post("/endpoints", data={"csrf": csrf, "name": "sneaky"})
    assert resp.status == 403
    assert (await client.get("/tokens")).status == 403
    assert (await client.get("/api/endpoints")).status == 401  # the API stays bearer-only


async def test_a_write_session_may_change_its_endpoint_but_not_make_endpoints(
    client: TestClient, make_endpoint: Any
) -> None:
    mine = await make_endpoint("mine")
    token = await make_token(client, "write", [mine["id"]])
    csrf = await sign_in(client, token=token["token"])
    settings = await (await client.get(f"/endpoints/{mine['id']}/settings")).text()
    assert 'id="settings-form"' in settings and 'id="delete-form"' in settings
    listing = await (await client.get("/endpoints")).text()
    assert 'id="create-endpoint"' not in listing and 'href="/tester"' in listing
    resp = await client.post(
        f"/endpoints/{mine['id']}/settings",
        data={"csrf": csrf, "name": "renamed", "settings": "{}"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert (await client.post("/endpoints", data={"csrf": csrf, "name": "x"})).status == 403


async def test_revoking_or_expiry_ends_the_token_s_sessions(
    client: TestClient, db: asyncpg.Connection
) -> None:
    token = await make_token(client, "read")
    await sign_in(client, token=token["token"])
    assert (
        await db.fetchval("SELECT count(*) FROM web_sessions WHERE api_token_id = $1", token["id"])
        == 1
    )
    assert (await client.get("/endpoints", allow_redirects=False)).status == 200
    assert (await client.delete(f"/api/tokens/{token['id']}", headers=AUTH)).status == 204
    assert (
        await db.fetchval("SELECT count(*) FROM web_sessions WHERE api_token_id = $1", token["id"])
        == 0
    )
    resp = await client.get("/endpoints", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")

    other = await make_token(client, "read")
    await sign_in(client, token=other["token"])
    await db.execute("UPDATE api_tokens SET expires_at = now() WHERE id = $1", other["id"])
    resp = await client.get("/endpoints", allow_redirects=False)
    assert resp.status == 303

    page = await (await client.get("/login")).text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    assert nonce
    resp = await client.post("/login", data={"token": token["token"], "nonce": nonce.group(1)})
    assert resp.status == 401  # a revoked token signs nobody in


async def test_the_tokens_page_makes_shows_once_and_revokes(
    client: TestClient, db: asyncpg.Connection, make_endpoint: Any
) -> None:
    mine, theirs = await make_endpoint("mine"), await make_endpoint("theirs")
    csrf = await sign_in(client)
    assert 'href="/tokens"' in await (await client.get("/endpoints")).text()
    page = await (await client.get("/tokens")).text()
    assert "No tokens yet" in page and 'id="create-token"' in page

    resp = await client.post(
        "/tokens",
        data={"csrf": csrf, "name": "Anna", "scope": "read", "endpoint": str(mine["id"]),
              "expires_days": "30"},
    )  # fmt: skip
    assert resp.status == 201
    made = await resp.text()
    secret = re.search(r'id="new-token-secret">(pbm_[A-Za-z0-9_-]+)<', made)
    assert secret, made
    token = {"token": secret.group(1)}
    assert (await client.get(f"/api/endpoints/{mine['id']}", headers=bearer(token))).status == 200
    assert (await client.get(f"/api/endpoints/{theirs['id']}", headers=bearer(token))).status == 404
    row = await db.fetchrow("SELECT id, scope, endpoint_ids, expires_at FROM api_tokens")
    assert row["scope"] == "read" and list(row["endpoint_ids"]) == [mine["id"]]
    assert row["expires_at"] is not None

    listed = await (await client.get("/tokens")).text()
    assert "Anna" in listed and secret.group(1) not in listed

    bad = await client.post("/tokens", data={"csrf": csrf, "name": "x", "scope": "root"})
    assert bad.status == 400
    assert (await client.post("/tokens", data={"name": "x", "scope": "read"})).status == 403

    revoke = f"/tokens/{row['id']}/revoke"
    assert (await client.post(revoke, data={"csrf": csrf})).status == 400
    assert (await client.post(revoke, data={"confirm": "yes"})).status == 403  # no CSRF
    resp = await client.post(revoke, data={"csrf": csrf, "confirm": "yes"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/tokens?revoked=1"
    assert (await client.get("/api/endpoints", headers=bearer(token))).status == 401
    assert "revoked" in await (await client.get("/tokens?revoked=1")).text()
    assert csrf_of(listed)
