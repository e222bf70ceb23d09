"""Metrics about endpoints and money: the info series (id → name, preset, link), the
creation time and expected interval the silence alert reads, all following the
endpoint table through the API; the payout counter fed by stored hits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor import metrics
from monitor.config import Config
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.metrics import Samples, parse, value


async def scrape(client: TestClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status == 200, await resp.text()
    return parse(await resp.text())


def series_of(samples: Samples, name: str, endpoint: int) -> list[dict[str, str]]:
    """Labels of every sample ``name`` has for ``endpoint``."""
    return [
        dict(labels)
        for (sample, labels), _ in samples.items()
        if sample == name and ("endpoint", str(endpoint)) in labels
    ]


INFO = "postback_monitor_endpoint_info"
CREATED = "postback_monitor_endpoint_created_timestamp_seconds"
INTERVAL = "postback_monitor_endpoint_expected_interval_seconds"


async def test_endpoint_series_follow_the_endpoint_table(
    client: TestClient, config: Config, make_endpoint: Any
) -> None:
    binom = await make_endpoint("Binom main", settings={"preset": "binom"})
    quiet = await make_endpoint("quiet", settings={"expected_interval": "off"})
    samples = await scrape(client)  # never hit, and still described
    assert series_of(samples, INFO, binom["id"]) == [
        {
            "endpoint": str(binom["id"]),
            "name": "Binom main",
            "preset": "binom",
            "url": f"{config.management_url}/endpoints/{binom['id']}",
        }
    ]
    assert series_of(samples, INFO, quiet["id"])[0]["preset"] == ""
    created = datetime.fromisoformat(binom["created_at"]).timestamp()
    assert value(samples, CREATED, endpoint=str(binom["id"])) == pytest.approx(created)
    assert value(samples, INTERVAL, endpoint=str(binom["id"])) == 1800
    assert series_of(samples, INTERVAL, quiet["id"]) == []  # "off": nothing to alert on

    # The setting, changed through the API, is what the alert reads at the next scrape.
    for setting, seconds in (("6h", 21600.0), ("off", None), ("90s", 90.0)):
        resp = await client.patch(
            f"/api/endpoints/{binom['id']}",
            json={"settings": {"expected_interval": setting}},
            headers=AUTH,
        )
        assert resp.status == 200, await resp.text()
        samples = await scrape(client)
        got = series_of(samples, INTERVAL, binom["id"])
        assert (value(samples, INTERVAL, endpoint=str(binom["id"])) if got else None) == seconds
    unset = {"settings": {"expected_interval": None}}  # a merge patch: null removes it
    resp = await client.patch(f"/api/endpoints/{quiet['id']}", json=unset, headers=AUTH)
    assert resp.status == 200
    assert value(await scrape(client), INTERVAL, endpoint=str(quiet["id"])) == 1800  # default

    # A rename replaces the series: one name per endpoint, or group_left breaks.
    resp = await client.patch(f"/api/endpoints/{binom['id']}", json={"name": "Binom"}, headers=AUTH)
    assert resp.status == 200
    names = [s["name"] for s in series_of(await scrape(client), INFO, binom["id"])]
    assert names == ["Binom"]

    assert (await client.delete(f"/api/endpoints/{binom['id']}", headers=AUTH)).status == 200
    samples = await scrape(client)
    for name in (INFO, CREATED, INTERVAL):
        assert series_of(samples, name, binom["id"]) == [], name
    assert series_of(samples, INFO, quiet["id"]) != []


async def test_payout_counts_stored_amounts_once(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("money")
    ep = str(endpoint["id"])
    path = capture_path(endpoint)
    before = await scrape(client)
    for query in (
        "click_id=a&payout=10&currency=usd&event=sale",
        "click_id=a&payout=10&currency=usd&event=sale",  # duplicate: not paid twice
        "click_id=b&payout=2.25&currency=EUR&event=lead",
        "click_id=c&payout=1&currency=XYZ&event=sale",  # flagged invalid_currency: counts
        "click_id=d&payout=1e5&currency=USD&event=sale",  # invalid amount: nothing
        "click_id=e&payout=4&event={event}",  # a macro is no event label
        "click_id=f&currency=USD&event=sale",  # no amount
    ):
        assert (await capture.get(f"{path}?{query}")).status == 200
    after = await scrape(client)

    def paid(event: str, currency: str) -> float:
        name = "postback_monitor_payout_total"
        labels = {"endpoint": ep, "event": event, "currency": currency}
        return value(after, name, **labels) - value(before, name, **labels)

    assert paid("sale", "USD") == 10
    assert paid("lead", "EUR") == 2.25
    assert paid("sale", "none") == 1
    assert paid("other", "none") == 4
    total = sum(
        v
        for (name, labels), v in after.items()
        if name == "postback_monitor_payout_total" and ("endpoint", ep) in labels
    )
    assert total == 17.25
    assert value(after, "postback_monitor_duplicates_total", endpoint=ep) == 1


async def test_payout_of_hits_that_fail_the_secret_is_not_counted(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    secret = {"value": "s3cr3t-value", "param": "token"}
    endpoint = await make_endpoint("guarded", settings={"secret": secret})
    path = capture_path(endpoint)
    for query in ("click_id=a&payout=5&token=s3cr3t-value", "click_id=b&payout=500&token=guess"):
        assert (await capture.get(f"{path}?{query}")).status == 200
    samples = await scrape(client)
    labels = {"endpoint": str(endpoint["id"]), "event": "none", "currency": "none"}
    assert value(samples, "postback_monitor_payout_total", **labels) == 5
    flag = {"endpoint": str(endpoint["id"]), "flag": "secret_mismatch"}
    assert value(samples, "postback_monitor_flags_total", **flag) == 1


def test_event_labels_are_bounded_per_endpoint() -> None:
    recorded = metrics.Metrics()
    cap = metrics.MAX_EVENT_LABELS_PER_ENDPOINT
    labels = [recorded.event_label("1", f"event{i}") for i in range(cap + 5)]
    assert labels[:cap] == [f"event{i}" for i in range(cap)]
    assert set(labels[cap:]) == {"other"}
    assert recorded.event_label("1", "event0") == "event0"  # admitted ones stay
    assert recorded.event_label("2", "event99") == "event99"  # a cap per endpoint
    assert recorded.event_label("2", None) == "none"
    for odd in ("{event}", "two words", "x" * 41, "ümlaut", "#s2#"):
        assert recorded.event_label("3", odd) == "other", odd
