"""Reading /metrics in tests: its text parsed into samples, one sample's value, and a
mix of postbacks whose counts the metric tests know."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CaptureClient, capture_path

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def send_mix(capture: CaptureClient, endpoint: dict[str, Any], tag: str) -> None:
    """Two clean GETs, a clean POST, a duplicate, a hit with two flags, an unknown token."""
    path = capture_path(endpoint)
    for query in (f"click_id={tag}a&payout=1.5", f"click_id={tag}b&payout=2"):
        assert (await capture.get(f"{path}?{query}")).status == 200
    resp = await capture.post(path, data={"click_id": f"{tag}c", "payout": "3"})
    assert resp.status == 200
    assert (await capture.get(f"{path}?click_id={tag}a&payout=1.5")).status == 200
    assert (await capture.get(f"{path}?click_id={{clickid}}&payout=abc")).status == 200
    assert (await capture.get("/p/no-such-token")).status == 404
