"""Alerts on the pages: the settings form's Alerts fieldset saves the ``alerts``
object (channels only for whoever may see channels), and the endpoint page shows
what fires and what fired."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.web.appkeys import ALERTS
from monitor.web.views.settings_form import field_values
from tests.conftest import AUTH
from tests.helpers.signin import csrf_of, sign_in
from tests.helpers.tokens import make_token


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(alert_interval_s=0.1)


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def not_(check: Callable[[], Awaitable[bool]]) -> bool:
    return not await check()


async def settings_of(client: TestClient, endpoint_id: int) -> dict[str, Any]:
    resp = await client.get(f"/api/endpoints/{endpoint_id}", headers=AUTH)
    found: dict[str, Any] = (await resp.json())["settings"]
    return found


def form_of(page: str, settings: dict[str, Any], **changes: str) -> list[tuple[str, str]]:
    """The settings form as a browser posts it: text fields, and the ticked boxes."""
    fields = {"csrf": csrf_of(page), **field_values(settings), **changes}
    fields.pop("alert_channel_ids")  # not a field: the checkboxes carry it
    if fields.get("alert_forwards_given_up") != "true":
        fields.pop("alert_forwards_given_up")  # an unticked box is not posted
    return list(fields.items())


async def channel(client: TestClient, name: str) -> int:
    body = {"name": name, "kind": "webhook", "config": {"url": "https://hooks.example/a"}}
    resp = await client.post("/api/channels", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


async def test_the_alerts_fieldset_saves_the_alerts_object(
    client: TestClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    first, second = await channel(client, "ops hook"), await channel(client, "dev hook")
    endpoint = await make_endpoint("shop")
    url = f"/endpoints/{endpoint['id']}/settings"
    page = await (await client.get(url)).text()
    assert 'id="alerts-fieldset"' in page and "ops hook (webhook)" in page
    form = form_of(
        page, {}, alert_channels_shown="1", alert_silence_after="2m", alert_flagged_share="5",
        alert_reminder="1h", alert_forwards_given_up="true",
    )  # fmt: skip
    form += [("alert_channel", str(first)), ("alert_channel", str(second))]
    resp = await client.post(url, data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert (await settings_of(client, endpoint["id"]))["alerts"] == {
        "channel_ids": [first, second],
        "silence_after_s": "2m",
        "flagged_share_above": 0.05,
        "forwards_given_up": True,
        "reminder_s": "1h",
    }
    page = await (await client.get(url)).text()
    assert f'name="alert_channel" value="{first}" checked' in page
    assert 'id="f-alert_flagged_share" type="text" value="5"' in page

    # A percent over 100 is refused beside its field, naming the key.
    settings = await settings_of(client, endpoint["id"])
    form = form_of(page, settings, alert_channels_shown="1", alert_flagged_share="150")
    resp = await client.post(url, data=form, allow_redirects=False)
    assert resp.status == 400
    text = await resp.text()
    assert "alerts.flagged_share_above:" in text
    assert 'id="f-alert_flagged_share" type="text" value="150"' in text
    assert 'aria-invalid="true"' in text

    # Every field emptied and no box ticked: no alerts at all.
    emptied = {k: "" for k, _ in form_of(page, settings) if k.startswith("alert_")}
    form = form_of(page, settings, alert_channels_shown="1", **emptied)
    resp = await client.post(url, data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert "alerts" not in await settings_of(client, endpoint["id"])


async def test_a_viewer_who_may_not_see_channels_keeps_them(
    client: TestClient, make_endpoint: Any
) -> None:
    hook = await channel(client, "ops hook")
    alerts = {"channel_ids": [hook], "silence_after_s": "1h"}
    endpoint = await make_endpoint("shop", settings={"alerts": alerts})
    token = await make_token(client, "write", [endpoint["id"]])
    await sign_in(client, token=token["token"])
    url = f"/endpoints/{endpoint['id']}/settings"
    page = await (await client.get(url)).text()
    assert 'id="alerts-fieldset"' in page and "ops hook" not in page
    assert 'name="alert_channel"' not in page
    # Even a forged list of boxes changes nothing without the right to see channels.
    form = form_of(page, await settings_of(client, endpoint["id"]), alert_silence_after="2h")
    form += [("alert_channels_shown", "1")]
    resp = await client.post(url, data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    saved = (await settings_of(client, endpoint["id"]))["alerts"]
    assert saved == {"channel_ids": [hook], "silence_after_s": "2h"}


async def test_the_json_editor_refuses_an_unknown_channel(
    client: TestClient, make_endpoint: Any
) -> None:
    csrf = await sign_in(client)
    endpoint = await make_endpoint("shop")
    document = '{"alerts": {"channel_ids": [4242], "silence_after_s": 60}}'
    resp = await client.post(
        f"/endpoints/{endpoint['id']}/settings", data={"csrf": csrf, "settings": document}
    )
    assert resp.status == 400
    assert "alerts.channel_ids: no channel with id 4242" in await resp.text()


async def test_the_endpoint_page_shows_firing_alerts_then_history(
    client: TestClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("quiet", settings={"alerts": {"silence_after_s": 1}})
    store = client.app[ALERTS]

    async def firing() -> bool:
        return bool((await store.of_endpoint(endpoint["id"]))["current"])

    await until(firing)
    page = await (await client.get(f"/endpoints/{endpoint['id']}")).text()
    assert 'id="alerts"' in page and "Firing: silence" in page
    assert "never received one since it was created" in page
    patch = {"settings": {"alerts": None}}
    resp = await client.patch(f"/api/endpoints/{endpoint['id']}", json=patch, headers=AUTH)
    assert resp.status == 200
    await until(lambda: not_(firing))
    page = await (await client.get(f"/endpoints/{endpoint['id']}")).text()
    assert "Firing:" not in page and 'id="alert-history"' in page
    assert "This endpoint watches no condition now." in page
