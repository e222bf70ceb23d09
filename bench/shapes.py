"""Worst CPU time per request for hostile body shapes, through capture's own steps.

    python bench/shapes.py [--runs 5]

A capture process judges one request at a time on its event loop, so one costly
request stalls every other sender. For each shape below, at the limits a sender
can reach (the 1 MiB ``max_body_bytes``, the 32 KiB request line, the front's 100
headers), this builds the hit with ``Capture.judged_hit`` (parse the query and the
body, decode the headers, judge with a typical endpoint's compiled rules) and
encodes it as the writer does for COPY (``copy_record`` and the jsonb encoder),
then prints the worst CPU time of a single thread over ``--runs`` runs and its
ratio to a typical postback. The target is under 20 ms for every shape. No
database and no sockets: this is the CPU a request costs, not a load test.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from monitor.capture.steps import Capture, Received
from monitor.config import Config
from monitor.model.hit import Hit
from monitor.rules.endpoint_settings import compile_endpoint_settings
from monitor.storage.db import _encode_jsonb
from monitor.storage.endpoints import Endpoint
from monitor.storage.hit_rows import copy_record

MIB = 1024 * 1024
URL_LIMIT = 32 * 1024
HEADER_LIMIT = 100
TARGET_MS = 20.0
JSONB_COLUMNS = (6, 7, 8, 16)  # params, body_params, headers, flags in COPY_COLUMNS order
TYPICAL_QUERY = b"click_id=3f9a1c2e7b&event=sale&payout=12.50&currency=USD&sub1=summer&sub2=fb"
TYPICAL_HEADERS = [
    (b"Host", b"capture.example.com"),
    (b"User-Agent", b"Voluum/1.0"),
    (b"Accept", b"*/*"),
    (b"X-Forwarded-For", b"203.0.113.7"),
]
JSON = (b"Content-Type", b"application/json")
FORM = (b"Content-Type", b"application/x-www-form-urlencoded")


def fill(unit: bytes, head: bytes = b"", tail: bytes = b"", limit: int = MIB) -> bytes:
    """``head`` + as many ``unit`` as fit + ``tail``, at most ``limit`` bytes."""
    return head + unit * ((limit - len(head) - len(tail)) // len(unit)) + tail


def shapes() -> list[tuple[str, bytes, list[tuple[bytes, bytes]], bytes]]:
    """(name, request target, headers, body) for each shape."""
    target = b"/p/bench?" + TYPICAL_QUERY
    post = [*TYPICAL_HEADERS, JSON]
    depth = MIB // 2
    multipart = b"multipart/form-data; boundary=xyz"
    part = b'--xyz\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n'
    return [
        ("typical GET postback", target, TYPICAL_HEADERS, b""),
        ("typical JSON postback", b"/p/bench", post,
         json.dumps({"click_id": "3f9a1c2e7b", "event": "sale", "payout": 12.5,
                     "currency": "USD", "meta": {"sub1": "summer", "ids": [1, 2]}}).encode()),
        ("JSON flat array of numbers", b"/p/bench", post, fill(b"1,", b"[", b"1]")),
        ("JSON array of floats", b"/p/bench", post, fill(b"1.5e300,", b"[", b"1]")),
        ("JSON deep arrays [[[...", b"/p/bench", post, b"[" * depth + b"]" * depth),
        ("JSON 900 deep arrays, wide", b"/p/bench", post,
         b"[" * 900 + fill(b"1,", limit=MIB - 1801) + b"1" + b"]" * 900),
        ("JSON deep objects", b"/p/bench", post, fill(b'{"a":', limit=MIB // 2) + b"1"
         + b"}" * (MIB // 2 // 5)),
        ("JSON 900 deep, long keys", b"/p/bench", post,
         b"".join(b'{"' + b"k" * 1000 + b'":' for _ in range(900)) + b"1" + b"}" * 900),
        ("JSON wide object (100k keys)", b"/p/bench", post,
         b"{" + b",".join(b'"%05x":1' % i for i in range(100_000)) + b"}"),
        ("JSON empty arrays [[],[],...", b"/p/bench", post, fill(b"[],", b"[", b"1]")),
        ("JSON nulls", b"/p/bench", post, fill(b"null,", b"[", b"1]")),
        ("JSON 4 KiB %-heavy strings", b"/p/bench", post,
         fill(b'"' + b"%a " * 1365 + b'",', b"[", b"1]")),
        ("JSON one long string", b"/p/bench", post, fill(b"x", b'{"click_id":"', b'"}')),
        ("JSON long escaped strings", b"/p/bench", post,
         b"[" + b",".join([b'"' + b"\\u00e9" * 2000 + b'"'] * 87) + b"]"),
        ("JSON long keys", b"/p/bench", post,
         b"{" + b",".join(b'"%s%d":1' % (b"k" * 10_000, i) for i in range(100)) + b"}"),
        ("form 100k+ fields", b"/p/bench", [*TYPICAL_HEADERS, FORM], fill(b"a=1&")),
        ("form one huge value", b"/p/bench", [*TYPICAL_HEADERS, FORM],
         fill(b"x", b"click_id=")),
        ("form huge escaped value", b"/p/bench", [*TYPICAL_HEADERS, FORM],
         fill(b"%7B", b"click_id=")),
        ("form 4 KiB %-escaped values", b"/p/bench", [*TYPICAL_HEADERS, FORM],
         fill(b"a=" + b"%25" * 1365 + b"&")),
        ("form huge macro-like value", b"/p/bench", [*TYPICAL_HEADERS, FORM],
         fill(b"{a ", b"click_id=")),
        ("query 32 KiB, many params", fill(b"a=%7B&", b"/p/bench?", limit=URL_LIMIT),
         TYPICAL_HEADERS, b""),
        ("query 32 KiB of %25", fill(b"%25", b"/p/bench?click_id=", limit=URL_LIMIT),
         TYPICAL_HEADERS, b""),
        ("query 32 KiB, one value", fill(b"{", b"/p/bench?click_id=", limit=URL_LIMIT),
         TYPICAL_HEADERS, b""),
        ("100 headers, 16 KiB values", target,
         [(b"X-H%d" % i, b"v" * (16 * 1024 - 10)) for i in range(HEADER_LIMIT)], b""),
        ("multipart, 20k parts", b"/p/bench", [*TYPICAL_HEADERS, (b"Content-Type", multipart)],
         fill(part)),
        ("invalid UTF-8 form", b"/p/bench", [*TYPICAL_HEADERS, FORM], fill(b"a=\xff\xfe&")),
        ("invalid UTF-8 JSON", b"/p/bench", post, fill(b'"\xff\xfe",', b"[", b"1]")),
        ("NUL-heavy form", b"/p/bench", [*TYPICAL_HEADERS, FORM], fill(b"\x00=%00&")),
        ("NUL-heavy JSON", b"/p/bench", post, fill(b'"\\u0000",', b"[", b"1]")),
    ]  # fmt: skip


def typical_endpoint() -> Endpoint:
    """An endpoint with the settings most users set: a preset, required params, a secret."""
    settings = {
        "preset": "voluum",
        "required_params": ["cid", "payout"],
        "secret": {"value": "s3cret-token", "param": "token"},
    }
    now = datetime.now(UTC)
    return Endpoint(
        id=1, token="bench", name="bench", description="", response_status=200,
        response_body="OK", response_content_type="text/plain", settings=settings,
        created_at=now, updated_at=now, compiled=compile_endpoint_settings(settings),
    )  # fmt: skip


def capture_steps() -> Capture:
    # judged_hit needs only the settings; cache, limiter and writer are never touched.
    unused: Any = None
    return Capture(Config(), unused, unused, unused)


def encode_row(hit: Hit) -> int:
    """The writer's COPY record for the hit, with its jsonb columns encoded; bytes encoded."""
    record = copy_record(hit)
    return sum(len(_encode_jsonb(record[i])) for i in JSONB_COLUMNS)


def worst_ms(work: Callable[[], object], runs: int) -> float:
    worst = 0.0
    for _ in range(runs):
        started = time.thread_time()
        work()
        worst = max(worst, (time.thread_time() - started) * 1000)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    steps, endpoint = capture_steps(), typical_endpoint()
    rows = []
    for name, target, headers, body in shapes():
        received = Received("POST" if body else "GET", target, headers, body, len(body), "1.2.3.4")

        def one_request(received: Received = received) -> int:
            return encode_row(steps.judged_hit(endpoint, received))

        one_request()  # warm up: imports, regex caches
        size = len(target) + sum(len(k) + len(v) + 4 for k, v in headers) + len(body)
        rows.append((name, size, worst_ms(one_request, args.runs)))
    baseline = rows[0][2]
    print(f"| shape | request bytes | worst CPU ms ({args.runs} runs) | × typical |")
    print("| --- | ---: | ---: | ---: |")
    for name, size, ms in rows:
        mark = "" if ms < TARGET_MS else f" (over {TARGET_MS:g} ms)"
        print(f"| {name} | {size:,} | {ms:.2f}{mark} | {ms / baseline:,.0f} |")


if __name__ == "__main__":
    main()
