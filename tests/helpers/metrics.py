"""Reading /metrics in tests: its text parsed into samples (each must carry the node
label), one sample's value, and a mix of postbacks whose counts the metric tests know."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CaptureClient, capture_path

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """The samples by name and labels, the ``node`` label left out: every sample must
    carry it, with one value for the whole scrape (see ``nodes``)."""
    samples: Samples = {}
    assert len(nodes(text)) == 1, nodes(text)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k != "node"}
            samples[s.name, frozenset(labels.items())] = s.value
    return samples


def nodes(text: str) -> set[str | None]:
    """The ``node`` label values of a scrape's samples (None for a sample without one)."""
    return {
        s.labels.get("node")
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
