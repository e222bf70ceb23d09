"""The Channels page: listed with secrets masked, a form per kind, the test button
and its result, delete with confirmation, CSRF; linked from every page's header."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient

from monitor.config import Config
from tests.helpers.signin import sign_in
from tests.helpers.tracker import Tracker

TOKEN = "123456:AAbbCCddEEffGGhhIIjjKKllMMnn"


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(forward_allow=("127.0.0.1",), outbound_timeout_s=5.0)


async def test_add_test_and_delete_a_channel_from_the_page(
    client: TestClient, tracker: Tracker
) -> None:
    csrf = await sign_in(client, "/channels")
    page = await (await client.get("/channels")).text()
    assert '<a href="/channels">Channels</a>' in page
    assert "No channels yet" in page
    for kind in ("webhook", "slack", "telegram", "discord", "email"):
        assert f'id="new-{kind}"' in page

    resp = await client.post(
        "/channels",
        data={"csrf": csrf, "kind": "webhook", "name": "Ops hook", "url": tracker.url("/h")},
    )
    page = await resp.text()
    assert resp.status == 201, page
    secret = re.search(r"(whsec_[A-Za-z0-9+/=]+)", page)
    assert secret and 'id="signing-secret"' in page
    # Shown once: the list shows it masked from now on.
    listed = await (await client.get("/channels")).text()
    assert secret.group(1) not in listed and "Ops hook" in listed
    channel_id = re.search(r'id="channel-(\d+)"', listed)
    assert channel_id
    ident = channel_id.group(1)

    resp = await client.post(f"/channels/{ident}/test", data={"csrf": csrf})
    page = await resp.text()
    assert resp.status == 200
    assert "Test notification to Ops hook:\n  delivered (status 200)" in page
    assert len(tracker.requests) == 1
    assert "TEST: a test notification" in page  # the delivery log on the page

    tracker.default = 404
    page = await (await client.post(f"/channels/{ident}/test", data={"csrf": csrf})).text()
    assert "failed (status 404): the far end answered 404: tracker says 404" in page

    resp = await client.post(f"/channels/{ident}/delete", data={"csrf": csrf})
    assert resp.status == 400 and "Tick the box" in await resp.text()
    resp = await client.post(f"/channels/{ident}/test", data={})
    assert resp.status == 403
    resp = await client.post(
        f"/channels/{ident}/delete", data={"csrf": csrf, "confirm": "yes"}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == f"/channels?deleted={ident}"
    page = await (await client.get(resp.headers["Location"])).text()
    assert f"Channel {ident} deleted." in page and "Ops hook" not in page


async def test_a_refused_form_keeps_what_was_typed_but_no_secret(client: TestClient) -> None:
    csrf = await sign_in(client, "/channels")
    resp = await client.post(
        "/channels",
        data={
            "csrf": csrf,
            "kind": "telegram",
            "name": "TG",
            "bot_token": TOKEN,
            "chat_id": "not a chat",
        },
    )
    page = await resp.text()
    assert resp.status == 400
    assert "config.chat_id" in page and 'value="not a chat"' in page
    assert TOKEN not in page
    resp = await client.post(
        "/channels",
        data={
            "csrf": csrf,
            "kind": "email",
            "name": "Mail",
            "to": "ops@example.com",
            "from": "pbm@example.com",
            "host": "smtp.example.com",
            "port": "587",
            "username": "pbm",
            "password": "hunter2-smtp",
            "security": "starttls",
        },
    )
    page = await resp.text()
    assert resp.status == 201, page
    assert "hunter2-smtp" not in page and "smtp.example.com" in page


async def test_the_page_needs_a_session(client: TestClient) -> None:
    resp = await client.get("/channels", allow_redirects=False)
    assert resp.status in (302, 303) and resp.headers["Location"].startswith("/login")
