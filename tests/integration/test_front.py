"""The capture listener's protocol on a real socket: HTTP details of capture, the
probes, and what each listener refuses.

The server runs in the test's event loop exactly as ``serve`` runs it (an aiohttp
runner with the capture site and the management site, each on its own port), so
the clients below speak raw bytes to the same code a sender meets.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from monitor import listen
from monitor.capture import front
from monitor.capture import protocol as front_protocol
from monitor.config import Config
from monitor.server.app import create_app
from monitor.server.serve import start_capture, start_management
from tests.conftest import ADMIN_TOKEN
from tests.helpers.rawhttp import HOST, Conn, free_port, get
from tests.helpers.rawhttp import connect as raw_connect


@dataclass
class Served:
    """A server as ``serve`` runs it: ``connect`` opens a raw connection to capture,
    ``manage`` one to the management listener."""

    runner: web.AppRunner
    front: front.Front
    capture_port: int
    management_port: int
    opened: list[Conn] = field(default_factory=list)

    async def connect(self, receive_buffer: int | None = None) -> Conn:
        return await self._open(self.capture_port, receive_buffer)

    async def manage(self) -> Conn:
        return await self._open(self.management_port, None)

    async def _open(self, port: int, receive_buffer: int | None) -> Conn:
        conn = await raw_connect(HOST, port, receive_buffer)
        self.opened.append(conn)
        return conn

    async def stop(self) -> None:
        for conn in self.opened:
            conn.close()
        await self.runner.cleanup()


async def launch(config: Config) -> Served:
    """Both listeners on free ports, started as ``serve`` starts them."""
    config = config.replace(
        host=HOST, port=free_port(), capture_host=HOST, capture_port=free_port()
    )
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    listeners = listen.bind(config)
    capture = await start_capture(runner, config, listeners.capture, shutdown_timeout_s=5)
    management = await start_management(runner, config, listeners.management)
    return Served(runner, capture.front, capture.port, management.port)


@pytest.fixture
async def served(config: Config, db: asyncpg.Connection) -> AsyncIterator[Served]:
    server = await launch(config.replace(max_url_bytes=2048, max_body_bytes=1000))
    try:
        yield server
    finally:
        await server.stop()


async def make_endpoint(served: Served, **fields: Any) -> dict[str, Any]:
    """Created through the API on the management listener."""
    conn = await served.manage()
    body = json.dumps({"name": "front", **fields}).encode()
    await conn.send(
        b"POST /api/endpoints HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    status, _, answer = await conn.response()
    assert status == 201, answer
    return dict(json.loads(answer))


async def stored(db: asyncpg.Connection, headers: dict[str, str]) -> asyncpg.Record:
    """The stored row of the hit a response's X-Postback-Monitor-Hit-Id names."""
    row = await db.fetchrow(
        "SELECT method, raw_query, body, body_size, flags FROM hits WHERE id = $1",
        uuid.UUID(headers["x-postback-monitor-hit-id"]),
    )
    assert row is not None
    return row


async def test_keep_alive_and_pipelined_answers_come_in_order(
    served: Served, db: asyncpg.Connection
) -> None:
    connect = served.connect
    endpoint = await make_endpoint(served)
    path = f"/p/{endpoint['token']}"
    conn = await connect()
    await conn.send(get(path + "?n=0"))
    status, headers, body = await conn.response()
    assert (status, body) == (200, b"OK")
    answers = [headers]
    # Five requests in one write: answered in order on the same connection.
    await conn.send(b"".join(get(f"{path}?n={n}") for n in range(1, 6)))
    for _ in range(5):
        status, headers, _ = await conn.response()
        assert status == 200
        answers.append(headers)
    queries = [bytes((await stored(db, answer))["raw_query"]) for answer in answers]
    assert queries == [f"n={n}".encode() for n in range(6)]


async def test_other_paths_on_the_capture_listener_are_404_and_keep_the_connection(
    served: Served, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint(served)
    conn = await served.connect()
    auth = f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
    await conn.send(
        get(f"/p/{endpoint['token']}?step=1")
        + get("/api/endpoints", auth)
        + get("/")
        + b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        + get(f"/p/{endpoint['token']}?step=5")
    )
    status, headers, _ = await conn.response()
    assert status == 200 and bytes((await stored(db, headers))["raw_query"]) == b"step=1"
    for _ in range(3):
        status, headers, body = await conn.response()
        assert status == 404 and headers["content-type"].startswith("text/plain")
        assert b"/p/{token}" in body
    status, headers, _ = await conn.response()
    assert status == 200 and bytes((await stored(db, headers))["raw_query"]) == b"step=5"


async def test_the_management_listener_does_not_serve_capture(
    served: Served, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint(served)
    conn = await served.manage()
    for method in ("GET", "POST"):
        await conn.send(
            f"{method} /p/{endpoint['token']}?click_id=m HTTP/1.1\r\nHost: x\r\n".encode()
            + b"Content-Length: 0\r\n\r\n"
        )
        assert (await conn.response())[0] == 404
    assert await db.fetchval("SELECT count(*) FROM hits") == 0


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_probes_answer_alike_on_both_listeners(served: Served, method: str) -> None:
    answers = []
    for conn in (await served.connect(), await served.manage()):
        for path in ("/healthz", "/readyz"):
            await conn.send(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers, body = await conn.response(head=method == "HEAD")
            assert headers["content-type"] == "application/json; charset=utf-8"
            answers.append((path, status, sorted(json.loads(body)) if body else None))
    capture_side, management_side = answers[:2], answers[2:]
    assert capture_side == management_side
    assert capture_side[0][1] == capture_side[1][1] == 200
    if method == "GET":
        assert capture_side[0][2] == ["status"]
        assert capture_side[1][2] == ["queue_depth", "status"]


async def test_chunked_body_expect_continue_and_head(
    served: Served, db: asyncpg.Connection
) -> None:
    connect = served.connect
    endpoint = await make_endpoint(served)
    path = f"/p/{endpoint['token']}"
    conn = await connect()
    await conn.send(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"5\r\nclick\r\n9\r\n_id=c-42&\r\n3\r\na=1\r\n0\r\n\r\n"
    )
    status, headers, _ = await conn.response()
    assert status == 200
    row = await stored(db, headers)
    assert bytes(row["body"]) == b"click_id=c-42&a=1"

    await conn.send(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n".encode()
        + b"Content-Length: 3\r\n\r\n"
    )
    assert await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 10) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    await conn.send(b"a=1")
    status, headers, _ = await conn.response()
    assert status == 200 and bytes((await stored(db, headers))["body"]) == b"a=1"

    await conn.send(f"HEAD {path}?h=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status, headers, body = await conn.response(head=True)
    assert status == 200 and headers["content-length"] == "2" and body == b""
    assert (await stored(db, headers))["method"] == "HEAD"
    # Nothing of a body followed the HEAD answer: the next response parses cleanly.
    await conn.send(get(path))
    assert (await conn.response())[0] == 200


async def test_http_1_0_is_answered_then_closed(served: Served) -> None:
    connect = served.connect
    endpoint = await make_endpoint(served)
    conn = await connect()
    await conn.send(f"GET /p/{endpoint['token']}?v=1 HTTP/1.0\r\n\r\n".encode())
    status, headers, _ = await conn.response()
    assert status == 200 and headers["connection"] == "close"
    assert await conn.closed_by_server()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /p/TOKEN?" + b"q" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /p/TOKEN HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 20000 + b"\r\n\r\n", 431),
        (b"POST /p/TOKEN HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", 413),
        (b"GET /p/TOKEN HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
        (b"\x00\x01\x02\r\n\r\n", 400),
    ],
    ids=["target", "header", "body", "bad-length", "garbage"],
)
async def test_limits_and_garbage_get_a_4xx_and_a_closed_connection(
    served: Served, request_bytes: bytes, status: int
) -> None:
    connect = served.connect
    endpoint = await make_endpoint(served)
    conn = await connect()
    await conn.send(request_bytes.replace(b"TOKEN", endpoint["token"].encode()))
    assert (await conn.response())[0] == status
    assert await conn.closed_by_server()


async def test_streamed_body_over_the_hard_cap_is_refused(served: Served, config: Config) -> None:
    connect = served.connect
    endpoint = await make_endpoint(served)
    conn = await connect()
    await conn.send(
        f"POST /p/{endpoint['token']} HTTP/1.1\r\nHost: x\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    try:
        for _ in range(config.hard_max_body_bytes // len(chunk) + 2):
            await conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    except ConnectionError:
        pass  # the server answered and closed while we were still sending
    assert (await conn.response())[0] == 413


async def test_truncated_body_unknown_token_and_rate_limit(
    served: Served, db: asyncpg.Connection
) -> None:
    connect = served.connect
    endpoint = await make_endpoint(served, settings={"rate_limit_per_s": 1})
    path = f"/p/{endpoint['token']}"
    conn = await connect()
    body = b"a=" + b"b" * 1500  # max_body_bytes is 1000 here
    await conn.send(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    status, headers, _ = await conn.response()
    assert status == 200
    row = await stored(db, headers)
    assert bytes(row["body"]) == body[:1000] and row["body_size"] == len(body)
    assert [f["flag"] for f in row["flags"]] == ["body_truncated"]

    await conn.send(get(path))
    status, headers, _ = await conn.response()
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert "x-postback-monitor-hit-id" not in headers

    await conn.send(get("/p/not-a-real-token-at-all"))
    status, _, body = await conn.response()
    assert (status, body) == (404, b"unknown capture token\n")


async def test_idle_connections_are_closed(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    connect = served.connect
    monkeypatch.setattr(front_protocol, "IDLE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(front, "SWEEP_EVERY_S", 0.1)
    endpoint = await make_endpoint(served)
    conn = await connect()
    await conn.send(get(f"/p/{endpoint['token']}"))
    assert (await conn.response())[0] == 200
    # (A request that starts and never completes is timed by head_timeout_s instead:
    # tests/integration/test_hardening_wire.py.)
    assert await conn.closed_by_server()


async def test_a_half_closed_client_still_gets_its_answer(
    served: Served, db: asyncpg.Connection
) -> None:
    connect = served.connect
    endpoint = await make_endpoint(served)
    conn = await connect()
    await conn.send(get(f"/p/{endpoint['token']}?eof=1"))
    conn.writer.write_eof()  # as `nc -N` does: the request, then FIN
    status, headers, _ = await conn.response()
    assert status == 200
    assert bytes((await stored(db, headers))["raw_query"]) == b"eof=1"
    assert await conn.closed_by_server()


async def test_an_upgrade_request_is_answered_as_a_plain_one_then_closed(
    served: Served, db: asyncpg.Connection
) -> None:
    connect = served.connect
    endpoint = await make_endpoint(served)
    conn = await connect()
    await conn.send(
        get(f"/p/{endpoint['token']}?up=1", "Connection: Upgrade\r\nUpgrade: websocket\r\n")
    )
    status, headers, _ = await conn.response()
    assert status == 200
    assert bytes((await stored(db, headers))["raw_query"]) == b"up=1"
    assert await conn.closed_by_server()  # and nothing after the answer
