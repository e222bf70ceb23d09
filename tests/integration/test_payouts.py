"""Odd payouts through the real capture listener and writer: negative amounts stored
and flagged unless refunds, amount outliers judged against the endpoint's recent
amounts (seeded from the database after a restart), kept apart by event and currency."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.server.app import create_app
from tests.conftest import AUTH, CaptureClient, open_capture
from tests.helpers.captured import flags, hit, send
from tests.helpers.metrics import parse, value


def around_ten(i: int) -> str:
    """9.70 to 10.30: an ordinary spread of one offer's payouts."""
    return f"{Decimal(10) + (i % 7 - 3) * Decimal('0.1'):.2f}"


async def send_usual(
    capture: CaptureClient, endpoint: dict[str, Any], tag: str, count: int = 30, **extra: str
) -> list[str]:
    query = "".join(f"&{k}={v}" for k, v in extra.items())
    return [
        await send(capture, endpoint, f"click_id={tag}-{i}&payout={around_ten(i)}{query}")
        for i in range(count)  # one by one: each batch judges against those committed
    ]


async def test_negative_amounts_are_stored_and_flagged_unless_a_reversal(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: Any
) -> None:
    endpoint = await make_endpoint(settings={"preset": "generic"})
    sale = await send(capture, endpoint, "click_id=n1&event=sale&payout=-12.50&currency=USD")
    refund = await send(capture, endpoint, "click_id=n2&event=refund&payout=-5&currency=USD")
    stored = await hit(client, sale)
    assert [f["flag"] for f in stored["flags"]] == ["negative_amount"]
    assert stored["flags"][0]["status"] == "sale"
    assert await flags(client, refund) == ["orphan_reversal"]  # no negative_amount
    amounts = await db.fetch(
        "SELECT id::text, amount FROM hits WHERE endpoint_id = $1", endpoint["id"]
    )
    assert {r["id"]: r["amount"] for r in amounts} == {
        sale: Decimal("-12.50"), refund: Decimal(-5),
    }  # fmt: skip
    samples = parse(await (await client.get("/metrics", headers=AUTH)).text())
    ep = str(endpoint["id"])
    assert value(samples, "postback_monitor_flags_total", endpoint=ep, flag="negative_amount") == 1


async def test_only_the_far_amount_is_flagged_and_a_restart_seeds_from_the_database(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, config: Config,
    aiohttp_client: Any,
) -> None:  # fmt: skip
    endpoint = await make_endpoint(settings={"preset": "generic"})
    usual = await send_usual(capture, endpoint, "o", event="sale", currency="USD")
    far = await send(capture, endpoint, "click_id=o-far&event=sale&payout=500.00&currency=USD")
    for hit_id in usual:
        assert await flags(client, hit_id) == []
    stored = await hit(client, far)
    (flag,) = stored["flags"]
    assert flag == {
        "flag": "amount_outlier",
        "param": "payout",
        "value": "500.00",
        "message": "Amount 500.00 USD is far from this endpoint's usual 10.00 USD for event "
        "sale (median of the last 30).",
        "median": "10.00",
        "mad": "0.20",
        "currency": "USD",
        "event": "sale",
        "samples": 30,
    }
    samples = parse(await (await client.get("/metrics", headers=AUTH)).text())
    ep = str(endpoint["id"])
    assert value(samples, "postback_monitor_flags_total", endpoint=ep, flag="amount_outlier") == 1
    # A second app on the same database stands for the server after a restart: its
    # window is seeded by one query, the far amount included (31 known now).
    second = await aiohttp_client(create_app(config))
    async with open_capture(second, config) as capture2:
        usual = "click_id=o-far2&event=sale&payout=9.00&currency=USD"
        again = await send(capture2, endpoint, usual)
        far2 = await send(capture2, endpoint, "click_id=o-far3&event=sale&payout=0.10&currency=USD")
    assert await flags(client, again) == []
    stored = await hit(client, far2)
    assert [f["flag"] for f in stored["flags"]] == ["amount_outlier"]
    assert stored["flags"][0]["samples"] == 32


async def test_events_and_currencies_are_kept_apart(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    settings = {"preset": "generic", "amount_outlier": {"min_samples": 10}}
    endpoint = await make_endpoint(settings=settings)
    await send_usual(capture, endpoint, "s", 12, event="sale", currency="USD")
    lead = await send(capture, endpoint, "click_id=s-l&event=lead&payout=500&currency=USD")
    euro = await send(capture, endpoint, "click_id=s-e&event=sale&payout=500&currency=EUR")
    bare = await send(capture, endpoint, "click_id=s-b&payout=500")
    test = await send(capture, endpoint, "click_id=s-t&event=sale&payout=500&currency=USD&test=1")
    far = await send(capture, endpoint, "click_id=s-f&event=sale&payout=500&currency=USD")
    assert await flags(client, lead) == []
    assert await flags(client, euro) == []
    assert await flags(client, bare) == []
    assert await flags(client, test) == ["test_traffic"]  # tests are no payouts
    assert await flags(client, far) == ["amount_outlier"]
    # The test postback's 500 joined no window: the sale window still holds 12.
    assert (await hit(client, far))["flags"][0]["samples"] == 12


async def test_off_turns_it_off_and_a_settings_change_turns_it_on(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    settings: dict[str, Any] = {"amount_outlier": {"off": True, "min_samples": 5}}
    endpoint = await make_endpoint(settings=settings)
    await send_usual(capture, endpoint, "f", 8)
    off = await send(capture, endpoint, "click_id=f-x&payout=500")
    assert await flags(client, off) == []
    settings["amount_outlier"]["off"] = False
    resp = await client.patch(
        f"/api/endpoints/{endpoint['id']}", json={"settings": settings}, headers=AUTH
    )
    assert resp.status == 200, await resp.text()
    on = await send(capture, endpoint, "click_id=f-y&payout=900")
    assert await flags(client, on) == ["amount_outlier"]


async def test_a_bad_setting_is_refused_naming_its_key(
    client: TestClient, make_endpoint: Any
) -> None:
    resp = await client.post(
        "/api/endpoints",
        json={"name": "bad", "settings": {"amount_outlier": {"k": 10, "windw": 5}}},
        headers=AUTH,
    )
    assert resp.status == 400
    assert "amount_outlier.windw" in await resp.text()
