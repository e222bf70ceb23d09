"""Hostile input at the capture handler: random methods, targets, headers and bodies.

A real `postback-monitor serve` process takes whatever hypothesis makes, sent as
raw bytes on a socket. Whatever arrives: never a 5xx, the server stays up, and a
hit that was acknowledged is stored with its raw query and body byte for byte.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_TOKEN
from tests.helpers import rawhttp
from tests.helpers.server import ServerProcess

METHODS = st.sampled_from(
    ["GET"] * 6
    + ["POST"] * 4
    + ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PURGE", "get", "X" * 40]
)
PRINTABLE = bytes(c for c in range(0x21, 0x7F) if c != 0x23)  # no space, no '#'
# Request-target pieces: printable ASCII, percent-escapes good and bad (NUL,
# invalid UTF-8, encoded macros), separators, and now and then raw high bytes or
# a control byte, which the HTTP parser must refuse cleanly.
TARGET_BYTES = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"%",
                b"%0",
                b"%zz",
                b"%00",
                b"%ff",
                b"%fe%ff",
                b"%7Bclickid%7D",
                b"%257B",
                b"+",
                b"&",
                b"=",
                b"&&",
                b"==",
                b"?",
                b"k=1&k=2&k=3",
            ]
        ),
        st.binary(min_size=1, max_size=6).map(
            lambda b: bytes(PRINTABLE[c % len(PRINTABLE)] for c in b)
        ),
        st.text(min_size=1, max_size=3).map(lambda t: ("%" + t.encode().hex("%")).upper().encode()),
    ),
    max_size=60,
).map(b"".join)
RAW_EXTRA = st.sampled_from([b""] * 12 + [b"\xff", b"\x7f", b"\x00"])
HEADER_NAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789!#$%&'*+.^_`|~", min_size=1, max_size=20
)
HEADER_VALUE = st.one_of(
    st.binary(max_size=60).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F)),
    st.binary(max_size=10).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
BODIES = st.one_of(
    st.binary(max_size=2000),
    st.just(b"\x00" * 100),
    st.just(b'{"click_id": "\\u0000", "a": [' * 50),
    st.just(b"a=1&" * 500),
)


@pytest.fixture(scope="module")
def token(live_server: ServerProcess) -> str:
    import json
    import urllib.request

    req = urllib.request.Request(
        live_server.url + "/api/endpoints",
        data=json.dumps({"name": "hostile"}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["token"])


def send(port: int, request: bytes) -> bytes:
    """The whole raw answer (maybe none) to ``request``, from a synchronous test."""
    return asyncio.run(rawhttp.exchange("127.0.0.1", port, request))


def stored(pg_url: str, hit_id: str) -> asyncpg.Record | None:
    async def fetch() -> asyncpg.Record | None:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetchrow(
                "SELECT raw_query, body FROM hits WHERE id = $1", uuid.UUID(hit_id)
            )
        finally:
            await conn.close()

    return asyncio.run(fetch())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=METHODS,
    tail=TARGET_BYTES,
    query=TARGET_BYTES,
    headers=st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=8),
    body=BODIES,
    raw_extra=RAW_EXTRA,
)
def test_capture_never_fails_on_hostile_requests(
    live_server: ServerProcess,
    token: str,
    pg_url: str,
    method: str,
    tail: bytes,
    query: bytes,
    headers: list[tuple[str, bytes]],
    body: bytes,
    raw_extra: bytes,
) -> None:
    query += raw_extra
    target = b"/p/" + token.encode() + b"/" + tail.replace(b"?", b"") + b"?" + query
    head = (
        method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    )
    for name, value in headers:
        if name.lower() in ("content-length", "transfer-encoding", "host", "connection", "expect"):
            continue
        head += name.encode() + b": " + value + b"\r\n"
    request = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    response = send(live_server.capture_port, request)
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), response[:200]
    status = int(status_line.split()[1])
    assert status < 500, response[:500]
    event(f"status {status}")
    if 200 <= status < 300 and method.upper() == method:
        hit_id = rawhttp.header(response, "X-Postback-Monitor-Hit-Id")
        assert hit_id is not None, response[:500]
        row = stored(pg_url, hit_id)
        assert row is not None
        assert bytes(row["raw_query"]) == query
        assert bytes(row["body"]) == body


@pytest.mark.parametrize("listener", ["capture_port", "port"])
def test_server_still_up_after_garbage(live_server: ServerProcess, listener: str) -> None:
    port = getattr(live_server, listener)
    for garbage in (
        b"\x00\x01\x02\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /p/" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"POST /p/x HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"GET /p/x HTTP/1.1\r\nX-Long: " + b"v" * 40000 + b"\r\n\r\n",
    ):
        response = send(port, garbage)
        if response:
            assert response[9:10] != b"5", response[:200]
    healthz = send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"200" in healthz[:20]
