"""The channels API: create, list, read, change, delete, test, the delivery log; the
400s that name the key; secrets masked in every answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook

from monitor.config import Config
from tests.conftest import AUTH
from tests.helpers.smtp import SmtpServer
from tests.helpers.tracker import Tracker

TOKEN = "123456:AAbbCCddEEffGGhhIIjjKKllMMnn"


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(forward_allow=("127.0.0.1",), outbound_timeout_s=5.0)


async def create(client: TestClient, doc: dict[str, Any], status: int = 201) -> dict[str, Any]:
    resp = await client.post("/api/channels", json=doc, headers=AUTH)
    body: dict[str, Any] = await resp.json()
    assert resp.status == status, body
    return body


async def test_crud_with_secrets_masked(client: TestClient) -> None:
    made = await create(
        client,
        {"name": "hook", "kind": "webhook", "config": {"url": "https://alerts.example.com/h"}},
    )
    secret = made["signing_secret"]
    assert secret.startswith("whsec_")
    assert made["config"] == {"url": "https://alerts.example.com/h", "secret": "set"}
    tg = await create(
        client, {"name": "tg", "kind": "telegram", "config": {"bot_token": TOKEN, "chat_id": 42}}
    )
    assert "signing_secret" not in tg and tg["config"]["bot_token"] == "set"

    listed = await (await client.get("/api/channels", headers=AUTH)).json()
    assert [c["name"] for c in listed["items"]] == ["hook", "tg"]
    for text in (
        json.dumps(listed),
        await (await client.get(f"/api/channels/{tg['id']}", headers=AUTH)).text(),
    ):
        assert TOKEN not in text and secret not in text

    resp = await client.patch(
        f"/api/channels/{tg['id']}",
        headers=AUTH,
        json={"name": "ops tg", "config": {"chat_id": "@ops_alerts", "bot_token": "set"}},
    )
    changed = await resp.json()
    assert resp.status == 200, changed
    assert changed["name"] == "ops tg" and changed["config"]["chat_id"] == "@ops_alerts"
    assert changed["config"]["bot_token"] == "set"
    # A new webhook secret: null drops the old one and a fresh one is shown once.
    resp = await client.patch(
        f"/api/channels/{made['id']}", headers=AUTH, json={"config": {"secret": None}}
    )
    rotated = await resp.json()
    assert rotated["signing_secret"].startswith("whsec_") and rotated["signing_secret"] != secret

    resp = await client.delete(f"/api/channels/{tg['id']}", headers=AUTH)
    assert resp.status == 204
    resp = await client.get(f"/api/channels/{tg['id']}", headers=AUTH)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "channel_not_found"


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (
            {
                "name": "s",
                "kind": "slack",
                "config": {"webhook_url": "https://h.io/x", "channel": "#a"},
            },
            "unknown key(s) for a slack channel: channel",
        ),
        ({"name": "t", "kind": "telegram", "config": {"bot_token": TOKEN}}, "needs chat_id"),
        ({"name": "x", "kind": "sms", "config": {}}, "kind: one of"),
        ({"name": "", "kind": "slack", "config": {"webhook_url": "https://h.io/x"}}, "name:"),
        (
            {
                "name": "e",
                "kind": "email",
                "config": {"to": [], "from": "a@b.io", "host": "h", "port": 25},
            },
            "config.to",
        ),
        (
            {"name": "w", "kind": "webhook", "config": {"url": "https://h.io", "secret": "plain"}},
            "config.secret",
        ),
    ],
)
async def test_bad_channels_are_400s_naming_the_key(
    client: TestClient, doc: dict[str, Any], words: str
) -> None:
    body = await create(client, doc, status=400)
    assert words in body["error"]["message"]
    assert TOKEN not in json.dumps(body)


async def test_patch_and_unknown_ids(client: TestClient) -> None:
    made = await create(
        client, {"name": "s", "kind": "slack", "config": {"webhook_url": "https://h.io/x"}}
    )
    resp = await client.patch(f"/api/channels/{made['id']}", headers=AUTH, json={"kind": "discord"})
    assert resp.status == 400 and "cannot change" in (await resp.json())["error"]["message"]
    resp = await client.patch(
        f"/api/channels/{made['id']}", headers=AUTH, json={"config": {"x": 1}}
    )
    assert resp.status == 400 and "unknown key(s)" in (await resp.json())["error"]["message"]
    for path in ("/api/channels/999", "/api/channels/abc", "/api/channels/999/deliveries"):
        assert (await client.get(path, headers=AUTH)).status == 404
    assert (await client.post("/api/channels/999/test", headers=AUTH)).status == 404
    assert (await client.get("/api/channels")).status == 401


async def test_the_test_action_delivers_and_is_logged(
    client: TestClient, tracker: Tracker, smtp_server: SmtpServer
) -> None:
    made = await create(
        client, {"name": "hook", "kind": "webhook", "config": {"url": tracker.url("/h")}}
    )
    resp = await client.post(f"/api/channels/{made['id']}/test", headers=AUTH)
    result = await resp.json()
    assert resp.status == 200
    assert result["ok"] is True and result["status"] == 200 and result["error"] is None
    (got,) = tracker.requests
    payload = Webhook(made["signing_secret"]).verify(got.body, got.headers)
    assert payload["type"] == "postback_monitor.test"
    assert payload["data"]["link"].endswith("/channels")

    tracker.default = 400
    result = await (await client.post(f"/api/channels/{made['id']}/test", headers=AUTH)).json()
    assert result == {**result, "ok": False, "status": 400, "attempts": 1}
    assert result["error"] == "the far end answered 400: tracker says 400"

    mail = await create(
        client,
        {
            "name": "mail",
            "kind": "email",
            "config": {
                "to": ["ops@example.com"],
                "from": "pbm@example.com",
                "host": "127.0.0.1",
                "port": smtp_server.port,
                "starttls": False,
            },
        },
    )
    result = await (await client.post(f"/api/channels/{mail['id']}/test", headers=AUTH)).json()
    assert result["ok"] is True and result["status"] == 250
    ((_, message),) = smtp_server.inbox.messages
    assert message["Subject"] == "[Postback Monitor] TEST: a test notification"

    resp = await client.get(f"/api/channels/{made['id']}/deliveries", headers=AUTH)
    log = await resp.json()
    assert [(d["ok"], d["status"]) for d in log["items"]] == [(False, 400), (True, 200)]
    assert log["next_before"] is None
    page = await (
        await client.get(f"/api/channels/{made['id']}/deliveries?limit=1", headers=AUTH)
    ).json()
    assert len(page["items"]) == 1 and page["next_before"] == page["items"][0]["id"]
    rest = await (
        await client.get(
            f"/api/channels/{made['id']}/deliveries?limit=1&before={page['next_before']}",
            headers=AUTH,
        )
    ).json()
    assert [d["status"] for d in rest["items"]] == [200] and rest["next_before"] is None
    resp = await client.get(f"/api/channels/{made['id']}/deliveries?limit=0", headers=AUTH)
    assert resp.status == 400
