"""The Channels page in the real browser on a phone (390 px): a webhook channel added
through its form, its signing secret shown once, a test notification sent with the
button and its delivery in the log; nothing wider than the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config
from tests.helpers.browser import Bases, page_width, playwright_expect, shot, sign_in
from tests.helpers.tracker import Tracker


@pytest.fixture
def server_config(server_config: Config) -> Config:
    return server_config.replace(forward_allow=("127.0.0.1",))


async def test_a_channel_is_added_and_tested_on_a_phone(
    server: Bases, phone: Any, tracker: Tracker, tmp_path: Path
) -> None:
    expect = playwright_expect()
    await sign_in(phone, server.management, "/channels")
    assert await page_width(phone) <= 390
    await phone.click("#new-webhook summary")
    form = phone.locator("#new-webhook form")
    await form.locator("input[name=name]").fill("On-call receiver with a rather long name")
    await form.locator("input[name=url]").fill(tracker.url("/a/long/path/for/the/receiver"))
    await form.locator("button[type=submit]").click()
    await expect(phone.locator("#signing-secret pre")).to_contain_text("whsec_")
    assert await page_width(phone) <= 390

    await phone.click("text=Send a test notification")
    await expect(phone.locator("#test-result")).to_contain_text("delivered (status 200)")
    assert len(tracker.requests) == 1
    await phone.click("details.deliveries summary")
    await expect(phone.locator("details.deliveries tbody tr")).to_have_count(1)
    assert await page_width(phone) <= 390
    await shot(phone, tmp_path, "phone-channels")
