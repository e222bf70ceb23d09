"""The audit log: what an action records (who, before/after), that secrets never
reach it, that refusals record nothing, reading it (API and page) and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from monitor.storage.retention import enforce
from tests.conftest import AUTH
from tests.helpers.signin import sign_in
from tests.helpers.tokens import bearer, make_token

BOT_TOKEN = "123456:AAbbCCddEEffGGhhIIjjKKllMMnnSecretBot"
PASSWORD = "smtp-password-never-logged"
SETTINGS_SECRET = "endpoint-shared-secret-value"
SLACK_URL = "https://hooks.slack.com/services/T0/B0/slackSecretPart"


async def entries(client: TestClient, query: str = "") -> dict[str, Any]:
    resp = await client.get(f"/api/audit{query}", headers=AUTH)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def newest(client: TestClient) -> dict[str, Any]:
    entry: dict[str, Any] = (await entries(client, "?limit=1"))["entries"][0]
    return entry


async def test_a_settings_change_through_the_api_records_before_and_after(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("shop", settings={"required_params": ["cid"]})
    made = await newest(client)
    assert made["action"] == "endpoint.create" and made["before"] is None
    assert made["after"]["name"] == "shop" and "token" not in made["after"]
    assert made["target"] == f"endpoint {endpoint['id']}"

    patch = {"name": "shop 2", "settings": {"forward_url": "https://t.example/pb"}}
    resp = await client.patch(f"/api/endpoints/{endpoint['id']}", json=patch, headers=AUTH)
    assert resp.status == 200
    entry = await newest(client)
    assert entry["action"] == "endpoint.update" and entry["actor"] == "admin token"
    assert entry["endpoint_id"] == endpoint["id"] and entry["actor_token_id"] is None
    assert entry["before"]["name"] == "shop" and entry["after"]["name"] == "shop 2"
    assert "forward_url" not in entry["before"]["settings"]
    assert entry["after"]["settings"]["forward_url"] == "https://t.example/pb"
    assert entry["after"]["settings"]["required_params"] == ["cid"]

    resp = await client.delete(f"/api/endpoints/{endpoint['id']}", headers=AUTH)
    gone = await newest(client)
    assert gone["action"] == "endpoint.delete" and gone["after"] is None
    assert gone["before"]["name"] == "shop 2"
    # Kept after the endpoint is gone, and still found by it.
    mine = await entries(client, f"?endpoint_id={endpoint['id']}")
    assert [e["action"] for e in mine["entries"]] == [
        "endpoint.delete", "endpoint.update", "endpoint.create"
    ]  # fmt: skip


async def test_the_settings_form_records_before_and_after_as_the_session(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("shop")
    csrf = await sign_in(client)
    resp = await client.post(
        f"/endpoints/{endpoint['id']}/settings",
        data={"csrf": csrf, "settings": '{"required_params": ["click_id"]}', "name": "renamed"},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    entry = await newest(client)
    assert entry["action"] == "endpoint.update"
    assert entry["actor"] == "session of the admin token"
    assert entry["before"]["settings"] == {} and entry["before"]["name"] == "shop"
    assert entry["after"]["settings"] == {"required_params": ["click_id"]}
    assert entry["after"]["name"] == "renamed"

    page = await (await client.get("/audit")).text()
    assert "session of the admin token" in page and "endpoint.update" in page
    assert "settings.required_params" in page and "renamed" in page
    assert 'id="audit-link"' in page
    one = await (await client.get(f"/audit?endpoint_id={endpoint['id']}")).text()
    assert "endpoint.create" in one
    settings = await (await client.get(f"/endpoints/{endpoint['id']}/settings")).text()
    assert 'id="history"' in settings and "settings.required_params" in settings


async def test_the_actor_is_the_token_or_the_session_that_acted(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("shop")
    token = await make_token(client, "admin", name="ci-bot")
    resp = await client.patch(
        f"/api/endpoints/{endpoint['id']}", json={"name": "by bot"}, headers=bearer(token)
    )
    assert resp.status == 200
    entry = await newest(client)
    assert entry["actor"] == f"token {token['id']} (ci-bot)"
    assert entry["actor_token_id"] == token["id"]

    csrf = await sign_in(client, token=token["token"])
    resp = await client.post(
        f"/endpoints/{endpoint['id']}/rotate",
        data={"csrf": csrf, "confirm": "yes"},
        allow_redirects=False,
    )
    assert resp.status == 303
    entry = await newest(client)
    assert entry["action"] == "endpoint.rotate_token"
    assert entry["actor"] == f"session of token {token['id']} (ci-bot)"
    assert entry["actor_token_id"] == token["id"]


async def test_refused_and_failed_requests_record_nothing(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("shop")
    count = len((await entries(client))["entries"])
    bad = {"settings": {"required_params": "not a list"}}
    resp = await client.patch(f"/api/endpoints/{endpoint['id']}", json=bad, headers=AUTH)
    assert resp.status == 400
    assert (await client.delete("/api/endpoints/999", headers=AUTH)).status == 404
    reader = await make_token(client, "read")
    count += 1  # making the token is an action
    resp = await client.delete(f"/api/endpoints/{endpoint['id']}", headers=bearer(reader))
    assert resp.status == 403
    csrf = await sign_in(client)
    resp = await client.post(f"/endpoints/{endpoint['id']}/delete", data={"csrf": csrf})
    assert resp.status == 400  # the box was not ticked
    assert len((await entries(client))["entries"]) == count


async def test_secrets_never_reach_the_audit_log(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    secret_settings = {"secret": {"value": SETTINGS_SECRET, "param": "sig"}}
    endpoint = await make_endpoint("shop", settings=secret_settings)
    found: list[str] = [endpoint["token"]]
    await client.patch(
        f"/api/endpoints/{endpoint['id']}",
        json={"settings": {"secret": {"value": SETTINGS_SECRET + "2", "param": "sig"}}},
        headers=AUTH,
    )
    changed = await newest(client)
    assert changed["before"]["settings"]["secret"] == "[hidden]"
    assert changed["after"]["settings"]["secret"] == "[hidden, changed]"
    resp = await client.post(f"/api/endpoints/{endpoint['id']}/rotate-token", headers=AUTH)
    found.append((await resp.json())["token"])
    hook = {"name": "hook", "kind": "webhook", "config": {"url": "https://alerts.example/h"}}
    resp = await client.post("/api/channels", json=hook, headers=AUTH)
    made = await resp.json()
    found.append(made["signing_secret"])
    chat = {"name": "tg", "kind": "telegram", "config": {"bot_token": BOT_TOKEN, "chat_id": 1}}
    resp = await client.post("/api/channels", json=chat, headers=AUTH)
    assert resp.status == 201, await resp.text()
    mail_config = {
        "to": ["ops@example.com"], "from": "pbm@example.com", "host": "mail.example.com",
        "port": 587, "username": "pbm", "password": PASSWORD,
    }  # fmt: skip
    resp = await client.post(
        "/api/channels", json={"name": "m", "kind": "email", "config": mail_config}, headers=AUTH
    )
    assert resp.status == 201, await resp.text()
    slack = {"name": "s", "kind": "slack", "config": {"webhook_url": SLACK_URL}}
    resp = await client.post("/api/channels", json=slack, headers=AUTH)
    assert resp.status == 201, await resp.text()
    resp = await client.patch(
        f"/api/channels/{made['id']}", json={"config": {"secret": None}}, headers=AUTH
    )
    assert resp.status == 200, await resp.text()
    found.append((await resp.json()).get("signing_secret") or made["signing_secret"])
    found.append((await make_token(client, "read"))["token"])
    resp = await client.post(f"/api/endpoints/{endpoint['id']}/share-links", headers=AUTH)
    found.append((await resp.json())["url"].rsplit("/", 1)[-1])
    csrf = await sign_in(client)
    resp = await client.post("/tokens", data={"csrf": csrf, "name": "page", "scope": "read"})
    assert resp.status == 201
    page = await resp.text()
    found.append(page.split('id="new-token-secret">', 1)[1].split("<", 1)[0])

    text = await db.fetchval("SELECT string_agg(a::text, ' ') FROM audit_log a")
    assert await db.fetchval("SELECT count(*) FROM audit_log") >= 10
    for secret in [*found, BOT_TOKEN, PASSWORD, SETTINGS_SECRET, SLACK_URL, "slackSecretPart"]:
        assert secret and secret not in text, f"{secret[:12]}... is in the audit log"


async def test_pages_of_entries_by_cursor(client: TestClient, make_endpoint: Any) -> None:
    for i in range(5):
        await make_endpoint(f"e{i}")
    first = await entries(client, "?limit=2")
    assert [e["after"]["name"] for e in first["entries"]] == ["e4", "e3"]
    second = await entries(client, f"?limit=2&cursor={first['next_cursor']}")
    assert [e["after"]["name"] for e in second["entries"]] == ["e2", "e1"]
    last = await entries(client, f"?limit=2&cursor={second['next_cursor']}")
    assert [e["after"]["name"] for e in last["entries"]] == ["e0"]
    assert last["next_cursor"] is None
    everything = await entries(client)
    assert len(everything["entries"]) == 5 and everything["next_cursor"] is None
    assert set(everything["entries"][0]) == {
        "id", "at", "actor", "actor_token_id", "action", "endpoint_id", "target", "before",
        "after",
    }  # fmt: skip
    for query in ("limit=0", "limit=501", "limit=x", "cursor=abc", "cursor=0", "endpoint_id=-1"):
        resp = await client.get(f"/api/audit?{query}", headers=AUTH)
        assert resp.status == 400, query
        assert (await resp.json())["error"]["code"] == "invalid_query"
    older = await (await client.get(f"/audit?cursor={first['next_cursor']}", headers=AUTH)).text()
    assert "e2" in older and "e4" not in older and "« Newest" in older


async def test_only_unrestricted_admin_tokens_read_it(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("shop")
    for scope in ("read", "write"):
        token = await make_token(client, scope)
        assert (await client.get("/api/audit", headers=bearer(token))).status == 403
        assert (await client.get("/audit", headers=bearer(token))).status == 403
    limited = await make_token(client, "admin", [endpoint["id"]])
    assert (await client.get("/api/audit", headers=bearer(limited))).status == 403
    writer = await make_token(client, "write")
    await sign_in(client, token=writer["token"])
    page = await (await client.get("/endpoints")).text()
    assert 'id="audit-link"' not in page
    settings = await (await client.get(f"/endpoints/{endpoint['id']}/settings")).text()
    assert "Recent changes" not in settings and 'id="audit"' not in settings
    admin = await make_token(client, "admin")
    assert (await client.get("/api/audit", headers=bearer(admin))).status == 200


async def test_retention_deletes_entries_older_than_the_server_keeps(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    await make_endpoint("kept")
    now = datetime.now(UTC)
    await db.execute(
        "INSERT INTO audit_log (at, actor, action) VALUES ($1, 'admin token', 'old.one'),"
        " ($2, 'admin token', 'recent.one')",
        now - timedelta(days=31),
        now - timedelta(days=29),
    )
    report = await enforce(db, default_days=None, now=now)
    assert report.deleted_audit == 0
    report = await enforce(db, default_days=30, now=now)
    assert report.deleted_audit == 1
    left = await db.fetch("SELECT action FROM audit_log ORDER BY id")
    assert [r["action"] for r in left] == ["endpoint.create", "recent.one"]
