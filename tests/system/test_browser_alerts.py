"""Alerts in the real browser on a phone (390 px): the settings page's Alerts
fieldset ticks a channel and saves, and the endpoint page shows the firing alert,
then its history once resolved; nothing wider than the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config
from tests.helpers.browser import Bases, page_width, playwright_expect, shot, sign_in
from tests.helpers.server import admin_api as api

LONG_NAME = "Everflow → Voluum main tracker for the Brazil campaigns (iOS, Android)"


@pytest.fixture
def server_config(server_config: Config) -> Config:
    return server_config.replace(alert_interval_s=0.2)


async def test_alerts_are_set_and_shown_on_a_phone(
    server: Bases, phone: Any, tmp_path: Path
) -> None:
    expect = playwright_expect()
    base = server.management
    hook = {"name": "On-call receiver with a rather long name", "kind": "webhook"}
    channel = await api(
        base, "POST", "/api/channels", json={**hook, "config": {"url": "https://hooks.example/"}}
    )
    endpoint = await api(base, "POST", "/api/endpoints", json={"name": LONG_NAME})
    await sign_in(phone, base, f"/endpoints/{endpoint['id']}/settings")
    fieldset = phone.locator("#alerts-fieldset")
    await fieldset.locator(f"input[name=alert_channel][value='{channel['id']}']").check()
    await fieldset.locator("input[name=alert_silence_after]").fill("1")
    await fieldset.locator("input[name=alert_flagged_share]").fill("50")
    assert await page_width(phone) <= 390
    await phone.click("#settings-form button[type=submit]")
    await expect(phone.locator("p.notice")).to_contain_text("Saved.")
    saved = await api(base, "GET", f"/api/endpoints/{endpoint['id']}")
    assert saved["settings"]["alerts"] == {
        "channel_ids": [channel["id"]],
        "silence_after_s": 1,
        "flagged_share_above": 0.5,
    }

    await phone.goto(f"{base}/endpoints/{endpoint['id']}")
    await expect(phone.locator("#alerts")).to_be_visible()
    for _ in range(50):  # the evaluator fires within a few intervals of the save
        if await phone.locator(".alert-firing").count():
            break
        await phone.wait_for_timeout(200)
        await phone.reload()
    await expect(phone.locator(".alert-firing")).to_contain_text("Firing: silence")
    assert await page_width(phone) <= 390

    await api(
        base, "PATCH", f"/api/endpoints/{endpoint['id']}", json={"settings": {"alerts": None}}
    )
    for _ in range(50):
        await phone.reload()
        if await phone.locator("#alert-history tbody tr").count():
            break
        await phone.wait_for_timeout(200)
    await expect(phone.locator("#alert-history tbody tr")).to_have_count(1)
    assert await page_width(phone) <= 390
    await shot(phone, tmp_path, "phone-endpoint-alerts")
