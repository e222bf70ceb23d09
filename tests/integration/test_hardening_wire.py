"""Hostile and unusual input on the capture wire (issue #12, items 1, 2, 4, 5, 6, 10).

Raw sockets against the real front, served in the test's event loop as ``serve``
runs it, so a test can also look at the server's side of a connection (what it
buffers, whether it reads) where that is the behaviour in question.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from monitor.capture import front
from monitor.capture import protocol as front_protocol
from monitor.config import Config, ConfigError
from monitor.web import read_deadlines
from tests.conftest import ADMIN_TOKEN
from tests.helpers.rawhttp import HOST, Conn, get
from tests.integration.test_front import Served as Server
from tests.integration.test_front import launch, make_endpoint


@dataclass
class Served:
    """A started server (``tests.integration.test_front.Served``) and the endpoint in its cache."""

    server: Server
    endpoint: dict[str, Any]

    @property
    def front(self) -> front.Front:
        return self.server.front

    @property
    def port(self) -> int:
        return self.server.capture_port

    async def connect(self, receive_buffer: int | None = None) -> Conn:
        return await self.server.connect(receive_buffer)

    async def manage(self) -> Conn:
        return await self.server.manage()

    async def server_side(self, conn: Conn) -> front_protocol.FrontProtocol:
        """The front's protocol of ``conn``, the one connection open."""
        await conn.send(get("/p/"))  # one answer: the server has accepted the connection
        assert (await conn.response())[0] == 404
        (connection,) = self.front.connections
        return connection


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(config: Config, db: asyncpg.Connection) -> AsyncIterator[Serve]:
    """Start the server with settings changed for the test, and one endpoint in its
    cache from the start; stopped after the test."""
    servers: list[Server] = []

    async def start(endpoint: dict[str, Any] | None = None, **changes: Any) -> Served:
        served_config = config.replace(**changes)
        # Made through a first server: the one under test then loads it at start,
        # before any request, as a real deployment's endpoints are.
        first = await launch(served_config)
        try:
            made = await make_endpoint(first, **(endpoint or {}))
        finally:
            await first.stop()
        servers.append(await launch(served_config))
        return Served(servers[-1], made)

    try:
        yield start
    finally:
        for server in servers:
            await server.stop()


async def remote_ip_and_flags(db: asyncpg.Connection, headers: dict[str, str]) -> tuple[str, Any]:
    row = await db.fetchrow(
        "SELECT host(remote_ip) AS ip, flags, headers FROM hits WHERE id = $1",
        uuid.UUID(headers["x-postback-monitor-hit-id"]),
    )
    assert row is not None
    return row["ip"], row


# ------------------------------------------------------------------ item 1


async def test_a_blank_line_flood_is_cut_short_and_stalls_no_one(serve: Serve) -> None:
    served = await serve()
    endpoint = served.endpoint
    flooder = await served.connect()
    sender = await served.connect()

    async def flood() -> None:
        try:
            for _ in range(64):  # 4 MiB of empty lines, never a request line
                await flooder.send(b"\r\n" * 32768)
        except ConnectionError:
            pass  # refused and closed while still flooding

    flooding = asyncio.create_task(flood())
    started = time.monotonic()
    # A few empty lines before a request are still fine (RFC 9112 allows them).
    await sender.send(b"\r\n" * 4 + get(f"/p/{endpoint['token']}?while=flood"))
    assert (await sender.response())[0] == 200
    assert time.monotonic() - started < 1.0
    status, _, body = await flooder.response()
    assert (status, body) == (400, b"too many empty lines before the request line\n")
    await flooding
    assert await flooder.closed_by_server()


async def test_a_header_value_that_never_ends_is_not_buffered_without_end(serve: Serve) -> None:
    served = await serve(max_url_bytes=2048, max_header_bytes=4096)
    conn = await served.connect()
    await conn.send(b"GET /p/x HTTP/1.1\r\nX-Endless: ")
    try:
        for _ in range(64):  # 4 MiB, no CRLF: llhttp reports the value only once it ends
            await conn.send(b"v" * 65536)
    except ConnectionError:
        pass
    assert (await conn.response())[0] == 431


# ------------------------------------------------------------------ item 2


async def test_pipelining_without_reading_pauses_reading_and_bounds_buffers(
    serve: Serve,
) -> None:
    served = await serve()
    # Small socket buffers (a slow link): the kernel cannot take in every answer.
    conn = await served.connect(receive_buffer=4096)
    server_side = await served.server_side(conn)
    assert server_side.transport is not None
    server_socket = server_side.transport.get_extra_info("socket")
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    conn.writer.write(get("/p/") * 20000)  # quick 404s; never read, for now
    conn.writer.write_eof()  # all it will send: answered all the same, then closed
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if server_side.paused and server_side.write_paused:
            break
    assert server_side.paused and server_side.write_paused
    transport = server_side.transport
    assert transport is not None
    _, high_water = transport.get_write_buffer_limits()
    # One more slice of answers at most, not every answer of what was sent.
    assert transport.get_write_buffer_size() < high_water + 256 * 1024
    assert len(server_side.backlog) <= 256 * 1024
    # Reading the answers lets the server read the rest: every request is answered.
    for _ in range(20000):
        assert (await conn.response())[0] == 404
    assert await conn.closed_by_server()


async def test_requests_pipelined_in_one_read_wait_unparsed_past_the_pending_limit(
    serve: Serve, db: asyncpg.Connection
) -> None:
    served = await serve()
    endpoint = served.endpoint
    conn = await served.connect()
    most_pending = 0

    async def watch() -> None:
        nonlocal most_pending
        while True:
            for connection in served.front.connections:
                most_pending = max(most_pending, len(connection.pending))
            await asyncio.sleep(0)

    watching = asyncio.create_task(watch())
    await conn.send(b"".join(get(f"/p/{endpoint['token']}?n={n}") for n in range(2000)))
    for _ in range(2000):
        assert (await conn.response())[0] == 200
    watching.cancel()
    assert most_pending <= front_protocol.MAX_PENDING + front_protocol.FEED_BYTES // 18 + 1
    assert await db.fetchval("SELECT count(*) FROM hits") == 2000


async def test_past_the_process_wide_limit_capture_answers_503_with_retry_after(
    serve: Serve,
) -> None:
    served = await serve(capture_max_in_flight=4)
    endpoint = served.endpoint
    conn = await served.connect()
    await conn.send(b"".join(get(f"/p/{endpoint['token']}?n={n}") for n in range(40)))
    answers = [await conn.response() for _ in range(40)]
    statuses = [status for status, _, _ in answers]
    assert statuses[:4] == [200] * 4
    busy = [headers for status, headers, _ in answers if status == 503]
    assert busy and all(headers["retry-after"] == "2" for headers in busy)
    assert served.front.in_flight == 0
    # Once the answers are out, the next request is taken again.
    await conn.send(get(f"/p/{endpoint['token']}?after=1"))
    assert (await conn.response())[0] == 200


# ------------------------------------------------------------------ item 4


@pytest.mark.parametrize("status", [204, 304])
async def test_a_bodiless_status_keeps_a_keep_alive_client_in_step(
    serve: Serve, status: int
) -> None:
    served = await serve(endpoint={"response": {"status": status, "body": "OK"}})
    endpoint = served.endpoint
    url = f"http://{HOST}:{served.port}/p/{endpoint['token']}"
    connector = aiohttp.TCPConnector(limit=1)  # one connection, reused for every request
    async with aiohttp.ClientSession(connector=connector) as session:
        for n in range(4):
            async with session.get(url, params={"n": str(n)}) as response:
                assert response.status == status
                assert await response.read() == b""
                assert ("Content-Length" in response.headers) == (status == 304)
    conn = await served.connect()
    await conn.send(f"HEAD /p/{endpoint['token']} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 2)
    for _ in range(2):
        assert (await conn.response(head=True))[0] == status


# ------------------------------------------------------------------ item 5


async def expect_continue(conn: Conn, target: str) -> tuple[int, dict[str, str], bytes]:
    await conn.send(
        f"POST {target} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n".encode()
        + b"Content-Length: 5\r\n\r\n"
    )
    return await conn.response()  # the first thing the server says


async def test_a_refused_expect_100_continue_gets_its_refusal_and_no_continue(
    serve: Serve,
) -> None:
    served = await serve(endpoint={"settings": {"rate_limit_per_s": 1}})
    endpoint = served.endpoint
    conn = await served.connect()
    status, _, body = await expect_continue(conn, "/p/not-a-real-token-at-all")
    assert (status, body) == (404, b"unknown capture token\n")
    assert await conn.closed_by_server()

    conn = await served.connect()
    assert (await expect_continue(conn, f"/p/{endpoint['token']}"))[0] == 100
    await conn.send(b"a=1&b")
    assert (await conn.response())[0] == 200
    status, headers, _ = await expect_continue(conn, f"/p/{endpoint['token']}")
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert await conn.closed_by_server()


# ------------------------------------------------------------------ item 6


async def test_only_the_trusted_proxy_header_names_the_sender(
    serve: Serve, db: asyncpg.Connection
) -> None:
    served = await serve(
        endpoint={"settings": {"allowed_ips": ["203.0.113.9"]}}, trusted_proxies=("127.0.0.1/32",)
    )
    endpoint = served.endpoint
    path = f"/p/{endpoint['token']}"
    conn = await served.connect()
    # The sender claims an allowed address; the proxy (127.0.0.1) says who it is.
    await conn.send(get(path, "Forwarded: for=203.0.113.9\r\nX-Forwarded-For: 198.51.100.7\r\n"))
    _, headers, _ = await conn.response()
    ip, row = await remote_ip_and_flags(db, headers)
    assert ip == "198.51.100.7"
    assert "ip_not_allowed" in [flag["flag"] for flag in row["flags"]]
    # The sender's own X-Forwarded-For entries come before the proxy's, on the left.
    await conn.send(get(path, "X-Forwarded-For: 203.0.113.9, 198.51.100.7\r\n"))
    _, headers, _ = await conn.response()
    assert (await remote_ip_and_flags(db, headers))[0] == "198.51.100.7"


def test_the_trusted_proxy_header_must_be_a_header_name(config: Config) -> None:
    with pytest.raises(ConfigError, match="trusted_proxy_header"):
        config.replace(trusted_proxy_header="X-Forwarded-For: 1.2.3.4")


async def test_a_chunked_trailer_is_never_taken_for_a_header(
    serve: Serve, db: asyncpg.Connection
) -> None:
    served = await serve(trusted_proxies=("127.0.0.1/32",))
    endpoint = served.endpoint
    conn = await served.connect()
    await conn.send(
        f"POST /p/{endpoint['token']} HTTP/1.1\r\nHost: x\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\n3\r\na=1\r\n0\r\n"
        + b"X-Forwarded-For: 203.0.113.9\r\n\r\n"
    )
    status, headers, _ = await conn.response()
    assert status == 200
    ip, row = await remote_ip_and_flags(db, headers)
    assert ip == "127.0.0.1"
    assert "x-forwarded-for" not in [name.lower() for name, _ in row["headers"]]


# ------------------------------------------------------------------ item 10


async def closed_by_server(conn: Conn) -> bool:
    """EOF, or a reset: a server that closes with the client's bytes unread resets."""
    try:
        return await conn.closed_by_server()
    except ConnectionError:
        return True


async def trickle(conn: Conn, pieces: list[bytes], every_s: float) -> None:
    try:
        for piece in pieces:
            await conn.send(piece)
            await asyncio.sleep(every_s)
    except ConnectionError:
        pass


TIMEOUTS = {"head_timeout_s": 0.4, "body_timeout_s": 0.6}
SLOW_HEADERS = [b"X-Slow: %d\r\n" % n for n in range(100)]


@pytest.fixture
def quick_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(front, "SWEEP_EVERY_S", 0.05)
    monkeypatch.setattr(read_deadlines, "SWEEP_EVERY_S", 0.05)


@pytest.mark.usefixtures("quick_sweeps")
async def test_capture_times_out_a_trickled_head_and_a_trickled_body(serve: Serve) -> None:
    served = await serve(**TIMEOUTS)
    endpoint = served.endpoint
    head = await served.connect()
    body = await served.connect()
    started = time.monotonic()
    heads = [f"GET /p/{endpoint['token']} HTTP/1.1\r\n".encode(), *SLOW_HEADERS]
    bodies = [
        f"POST /p/{endpoint['token']} HTTP/1.1\r\nContent-Length: 100\r\n\r\n".encode(),
        *[b"x"] * 100,
    ]
    trickling = [
        asyncio.create_task(trickle(head, heads, 0.1)),
        asyncio.create_task(trickle(body, bodies, 0.1)),
    ]
    status, _, answer = await head.response()
    assert (status, answer) == (408, b"request head not received in time\n")
    status, _, answer = await body.response()
    assert (status, answer) == (408, b"request body not received in time\n")
    assert time.monotonic() - started < 2.0
    assert await head.closed_by_server() and await body.closed_by_server()
    for task in trickling:
        task.cancel()


@pytest.mark.usefixtures("quick_sweeps")
async def test_management_times_out_a_trickled_head_and_a_trickled_body(serve: Serve) -> None:
    served = await serve(**TIMEOUTS)
    head = await served.manage()
    body = await served.manage()
    auth = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
    heads = [b"GET /api/endpoints HTTP/1.1\r\n", auth, *SLOW_HEADERS]
    bodies = [
        b"POST /api/endpoints HTTP/1.1\r\nContent-Type: application/json\r\n"
        + auth
        + b"Content-Length: 100\r\n\r\n",
        *[b" "] * 100,
    ]
    started = time.monotonic()
    trickling = [
        asyncio.create_task(trickle(head, heads, 0.1)),
        asyncio.create_task(trickle(body, bodies, 0.1)),
    ]
    assert await closed_by_server(head) and await closed_by_server(body)
    assert time.monotonic() - started < 2.0
    for task in trickling:
        task.cancel()
    # A request sent at an ordinary pace is not affected.
    conn = await served.manage()
    await conn.send(get("/api/endpoints", auth.decode()))
    assert (await conn.response())[0] == 200
