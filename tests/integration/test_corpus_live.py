"""The whole postback corpus through a live server: exact bytes in, stored flags out.

Each entry of tests/data/corpus.json is written to the capture URL over a socket as
the sender would (raw query, method, body, content type, headers); the sender's
address travels in X-Forwarded-For from a trusted proxy (127.0.0.1). The flags
stored on the hit, read back through the API, must be exactly the expected ones, and
the same flags (messages included) the pure path gives for the stored hit.

Every corpus click id is new, so the lifecycle flags (settled by the writer) can only
be orphan_reversal, and only on a lone reversal or rejection: which entries those are
is listed here, so a status misread (a sale taken for a refund) shows at once.
"""

from __future__ import annotations

import asyncio
import json
from ipaddress import ip_address
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor.capture.steps import HIT_ID_HEADER
from monitor.config import Config
from monitor.rules import compile_settings, judge
from monitor.rules.lifecycle import LIFECYCLE_FLAGS
from tests.conftest import AUTH, CaptureClient
from tests.helpers import rawhttp
from tests.unit.test_corpus_pure import CORPUS

SENDERS = 8
# The corpus entries that are a click's first postback and a reversal or rejection.
LONE_REVERSALS = {
    "redtrack: negative sum refund": ["orphan_reversal"],
    "keitaro: rejected zero payout": ["orphan_reversal"],
    "generic: chargeback with a negative payout": ["orphan_reversal"],
}


@pytest.fixture
def config(config: Config) -> Config:
    """The corpus names its senders' IPs in X-Forwarded-For, as a proxy would."""
    return config.replace(trusted_proxies=("127.0.0.1/32",))


def raw_request(entry: dict[str, Any], token: str) -> bytes:
    target = f"/p/{token}" + (f"?{entry['query']}" if entry["query"] else "")
    body = entry["body"].encode("utf-8")
    lines = [f"{entry['method']} {target} HTTP/1.1", "Host: capture.test"]
    lines += [f"{name}: {value}" for name, value in entry["headers"]]
    if entry["remote_ip"] is not None:
        lines.append(f"X-Forwarded-For: {entry['remote_ip']}")
    if entry["content_type"]:
        lines.append(f"Content-Type: {entry['content_type']}")
    if body or entry["method"] != "GET":
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def hit_id_of(response: bytes) -> str:
    hit_id = rawhttp.header(response, HIT_ID_HEADER)
    assert hit_id is not None, f"no {HIT_ID_HEADER} header in:\n{response[:2000]!r}"
    return hit_id


async def test_whole_corpus_through_a_live_server(
    client: TestClient, capture: CaptureClient
) -> None:
    endpoints: dict[str, dict[str, Any]] = {}
    for entry in CORPUS:
        key = json.dumps(entry["settings"], sort_keys=True)
        if key not in endpoints:
            resp = await client.post(
                "/api/endpoints",
                json={"name": f"corpus {len(endpoints)}", "settings": entry["settings"]},
                headers=AUTH,
            )
            assert resp.status == 201, await resp.text()
            endpoints[key] = await resp.json()
    host, port = capture.host, capture.port
    limit = asyncio.Semaphore(SENDERS)

    async def send(entry: dict[str, Any]) -> str:
        endpoint = endpoints[json.dumps(entry["settings"], sort_keys=True)]
        async with limit:
            status, response = await rawhttp.send(host, port, raw_request(entry, endpoint["token"]))
        assert status == 200, (entry["name"], response[:500])
        return hit_id_of(response)

    hit_ids = await asyncio.gather(*(send(entry) for entry in CORPUS))

    mismatches = []
    lifecycle: dict[str, list[str]] = {}
    for entry, hit_id in zip(CORPUS, hit_ids, strict=True):
        resp = await client.get(f"/api/hits/{hit_id}", headers=AUTH)
        assert resp.status == 200
        hit = await resp.json()
        stored = [flag for flag in hit["flags"] if flag["flag"] not in LIFECYCLE_FLAGS]
        if len(stored) < len(hit["flags"]):
            lifecycle[entry["name"]] = [f["flag"] for f in hit["flags"][len(stored) :]]
        names = sorted(flag["flag"] for flag in stored)
        if names != entry["expected_flags"]:
            mismatches.append((entry["name"], names, entry["expected_flags"]))
            continue
        # What capture parsed and stored, judged by the pure path, gives the same flags.
        verdict = judge(
            compile_settings(entry["settings"]),
            [(k, v) for k, v in hit["params"] + hit["body_params"]],
            remote_ip=hit["remote_ip"],
            headers=[(k, v) for k, v in hit["headers"]],
        )
        assert stored == verdict.flags, entry["name"]
        assert hit["method"] == entry["method"]
        if entry["remote_ip"] is not None:
            assert ip_address(hit["remote_ip"]) == ip_address(entry["remote_ip"]), entry["name"]
    assert not mismatches, "\n".join(f"{n}: stored {s}, expected {e}" for n, s, e in mismatches)
    assert lifecycle == LONE_REVERSALS
