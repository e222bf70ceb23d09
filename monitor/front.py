"""The listening socket's own HTTP/1.1 protocol: capture requests are answered here,
every other connection is handed to aiohttp.

A postback needs none of aiohttp's web layer (Request and Response objects, router,
middlewares, signals), which costs several times what parsing the request with
llhttp (httptools) and writing a ready-made response does. So each new connection
starts here. A connection whose request is not for ``/p/`` goes to aiohttp's own
protocol with the bytes read so far, and stays there; a capture connection that
later asks for another path is handed over too, once its responses are written.
The capture steps themselves live in ``monitor.capture`` and are shared with the
aiohttp handler.

HTTP details kept: keep-alive and HTTP/1.0 close, pipelined requests answered in
order, chunked bodies, ``Expect: 100-continue``, HEAD without a body, limits on
the target (414), header fields (431) and body (413), 400 for what llhttp refuses,
and an idle timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import cast

import httptools
import structlog
from aiohttp import web

from monitor import metrics
from monitor.capture import (
    CAPTURE_PREFIX,
    HIT_ID_HEADER,
    NOT_STORED,
    UNKNOWN_TOKEN,
    Capture,
    Received,
    Reply,
    stored_reply,
    token_of,
)
from monitor.config import Config
from monitor.endpoints import Endpoint
from monitor.hit import Hit
from monitor.writer import WriterClosed, WriterOverloaded

log = structlog.get_logger(__name__)

IDLE_TIMEOUT_S = 75.0  # as aiohttp's keep-alive timeout
SWEEP_EVERY_S = 5.0
LINGER_S = 2.0  # after refusing a request mid-body, as aiohttp's lingering close
MAX_HEADERS = 100
MAX_PENDING = 32  # pipelined requests read ahead of their answers before reading pauses
# How much of a request's first line is needed to tell a capture request from another.
ROUTE_PEEK_BYTES = 64
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
INTERNAL_ERROR = Reply(500, b"internal server error\n")
BAD_REQUEST = Reply(400, b"bad request\n")
REASONS = {status.value: status.phrase for status in HTTPStatus}


class _Date:
    """The Date header's value, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value


_date = _Date()


def render(reply: Reply, *, head: bool, close: bool) -> bytes:
    """The response bytes for a reply; HEAD gets the headers only."""
    lines = [
        f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, '')}\r\nContent-Type: ".encode(
            "ascii"
        ),
        reply.content_type.encode("utf-8"),
        f"\r\nContent-Length: {len(reply.body)}\r\nDate: ".encode("ascii"),
        _date.value(),
    ]
    if reply.hit_id is not None:
        lines.append(f"\r\n{HIT_ID_HEADER}: {reply.hit_id}".encode("ascii"))
    if reply.retry_after is not None:
        lines.append(f"\r\nRetry-After: {reply.retry_after}".encode("ascii"))
    if close:
        lines.append(b"\r\nConnection: close")
    lines.append(b"\r\n\r\n")
    if not head:
        lines.append(reply.body)
    return b"".join(lines)


def routes_to_capture(data: bytes) -> bool | None:
    """Whether a request starting at ``data`` is for ``/p/``; None until enough is read.

    Garbage counts as capture: llhttp then refuses it with a 400.
    """
    start = 0
    while data.startswith(b"\r\n", start):  # empty lines between requests are allowed
        start += 2
    space = data.find(b" ", start, start + ROUTE_PEEK_BYTES)
    if space < 0:
        has_line = data.find(b"\n", start) >= 0
        return True if has_line or len(data) - start >= ROUTE_PEEK_BYTES else None
    if len(data) < space + 4:
        return True if data.find(b"\n", space) >= 0 else None
    return data.startswith(CAPTURE_PREFIX, space + 1)


class _Request:
    """One request on a front connection, from its first byte to its answer."""

    __slots__ = (
        "answer",
        "body",
        "body_size",
        "head",
        "headers",
        "keep_alive",
        "method",
        "refusal",
        "started",
        "target",
    )  # fmt: skip

    def __init__(self) -> None:
        self.method = ""
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.keep_alive = True
        self.head = False
        # Set when the request is refused while it is still being read.
        self.refusal: Reply | None = None
        self.started = 0.0
        self.answer: bytes | None = None


class FrontProtocol(asyncio.Protocol):
    """One client connection while it speaks to capture."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer: str | None = None
        self.request: _Request | None = None  # the one being read
        self.pending: collections.deque[_Request] = collections.deque()  # unanswered, in order
        self.held = b""  # bytes not yet given to a parser
        self.handover_waiting = False
        self.closing = False
        self.linger = False
        self.eof = False
        self.paused = False
        # Set when a request completes or the answers are written: a connection
        # that completes no request for IDLE_TIMEOUT_S is closed, however slowly
        # it trickles bytes.
        self.last_active = time.monotonic()

    # ------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        peername = transport.get_extra_info("peername")
        self.peer = peername[0] if isinstance(peername, tuple) and peername else None
        self.front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.front.connections.discard(self)
        # Requests already handed to the writer are committed all the same; only
        # their answers have nowhere to go.

    def eof_received(self) -> bool:
        """The client sent all it will (a half-close): answer what is pending, then close."""
        self.eof = True
        return bool(self.pending)  # True keeps the transport open for the answers

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.request is None:  # between requests: whose is the next one?
            if self.held:
                data, self.held = self.held + data, b""
            route = routes_to_capture(data)
            if route is None:
                self.held = data
                return
            if not route:
                self._hand_over(data)
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # CONNECT or an Upgrade request: capture switches no protocols. Answer
            # what was read as a plain request, then close.
            if self.request is not None:
                self._refuse_and_close(None)
            else:
                self._close_after_answers()
        except httptools.HttpParserError:
            self._refuse_and_close(self.request.refusal if self.request else None)

    # ------------------------------------------------------------ llhttp callbacks

    def on_message_begin(self) -> None:
        self.request = _Request()

    def on_url(self, url: bytes) -> None:
        request = self.request
        assert request is not None
        request.target += url
        if len(request.target) > self.front.config.max_url_bytes:
            request.refusal = Reply(414, b"request target too long\n")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.request
        assert request is not None
        request.headers.append((name, value))
        if len(name) + len(value) + 2 > self.front.config.max_header_bytes:
            request.refusal = Reply(431, b"header field too large\n")
            raise _Refused
        if len(request.headers) > MAX_HEADERS:
            request.refusal = Reply(431, b"too many header fields\n")
            raise _Refused

    def on_headers_complete(self) -> None:
        request = self.request
        assert request is not None
        request.method = self.parser.get_method().decode("ascii", "replace")
        request.head = request.method == "HEAD"
        if not request.target.startswith(CAPTURE_PREFIX):
            # Pipelined behind a capture request in the same read: aiohttp cannot
            # take over mid-stream, so say plainly what to do instead.
            request.refusal = Reply(400, b"send requests for other paths on their own connection\n")
            raise _Refused
        length = _content_length(request.headers)
        if length is not None and length > self.front.config.hard_max_body_bytes:
            request.refusal = _too_large(self.front.config)
            raise _Refused
        if not self.pending and _expects_continue(request.headers) and self.transport:
            self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        request = self.request
        assert request is not None
        request.body_size += len(body)
        config = self.front.config
        if request.body_size > config.hard_max_body_bytes:
            request.refusal = _too_large(config)
            raise _Refused
        kept = request.body_size - len(body)
        if kept < config.max_body_bytes:
            request.body.append(body[: config.max_body_bytes - kept])

    def on_message_complete(self) -> None:
        request = self.request
        assert request is not None
        self.request = None
        self.last_active = time.monotonic()
        request.keep_alive = self.parser.should_keep_alive()
        request.started = time.perf_counter()
        self.pending.append(request)
        if len(self.pending) >= MAX_PENDING and self.transport and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        try:
            self._start(request)
        except Exception:
            log.exception("capture.failed", path="/p/<token>")
            self._finish(request, INTERNAL_ERROR)

    # ------------------------------------------------------------ answering

    def _start(self, request: _Request) -> None:
        """Take a complete request. With its endpoint in the cache (nearly always)
        nothing here awaits: the hit goes to the writer, and the answer is written
        from the writer's future's callback; no task per request."""
        token = token_of(request.target.partition(b"?")[0])
        if token is None:
            self._finish(request, UNKNOWN_TOKEN)
            return
        capture = self.front.capture
        admitted = capture.admit_cached(token)
        if admitted is None:  # not in the cache: the database is asked, in a task
            self.front.spawn(self._answer_after_lookup(request, token))
        elif isinstance(admitted, Reply):
            self._finish(request, admitted)
        else:
            self._store(request, admitted)

    async def _answer_after_lookup(self, request: _Request, token: str) -> None:
        try:
            admitted = await self.front.capture.admit(token)
            if isinstance(admitted, Reply):
                self._finish(request, admitted)
            else:
                self._store(request, admitted)
        except Exception:
            log.exception("capture.failed", path="/p/<token>")
            self._finish(request, INTERNAL_ERROR)

    def _store(self, request: _Request, endpoint: Endpoint) -> None:
        capture = self.front.capture
        received = Received(
            request.method,
            request.target,
            request.headers,
            b"".join(request.body),
            request.body_size,
            self.peer,
        )
        hit = capture.judged_hit(endpoint, received)
        try:
            future = capture.writer.enqueue(hit)
        except (WriterOverloaded, WriterClosed):
            self._finish(request, NOT_STORED)
            return
        future.add_done_callback(partial(self._stored, request, endpoint, hit))

    def _stored(
        self, request: _Request, endpoint: Endpoint, hit: Hit, future: asyncio.Future[None]
    ) -> None:
        # A failed write carries WriteFailed; cancelled cannot happen (nothing awaits it).
        failed = future.cancelled() or future.exception() is not None
        try:
            self._finish(request, NOT_STORED if failed else stored_reply(endpoint, hit))
        except Exception:  # a loop callback: nothing above would answer the request
            log.exception("capture.failed", path="/p/<token>")
            self._finish(request, INTERNAL_ERROR)

    def _finish(self, request: _Request, reply: Reply) -> None:
        metrics.record_capture(
            reply.status, reply.hit_id is not None, time.perf_counter() - request.started
        )
        close = not request.keep_alive or self.front.stopping
        request.answer = render(reply, head=request.head, close=close)
        if close:
            request.keep_alive = False
        self._flush()

    def _flush(self) -> None:
        """Write the answers that are ready, in request order."""
        transport = self.transport
        assert transport is not None
        pending = self.pending
        while pending and pending[0].answer is not None:
            request = pending.popleft()
            if transport.is_closing():
                continue
            transport.write(request.answer)  # type: ignore[arg-type]
            if not request.keep_alive:
                self._close()
                return
        if self.paused and len(pending) < MAX_PENDING // 2 and not self.closing:
            self.paused = False
            transport.resume_reading()
        if not pending:
            self.last_active = time.monotonic()
            if self.handover_waiting:
                self.handover_waiting = False
                data, self.held = self.held, b""
                self._hand_over(data)
            elif self.eof or self.closing_when_idle():
                self._close()

    def closing_when_idle(self) -> bool:
        return self.front.stopping and self.request is None

    def _refuse_and_close(self, refusal: Reply | None) -> None:
        """Answer a request llhttp or a limit refused (after those before it), then close."""
        reply = refusal or BAD_REQUEST
        if refusal is not None:  # a limit, counted as capture errors; llhttp's 400s are not
            metrics.record_capture(refusal.status, False, 0.0)
        request = self.request or _Request()
        self.request = None
        request.keep_alive = False
        request.answer = render(reply, head=False, close=True)
        self.pending.append(request)
        self.closing = True  # what arrives from now on is read and dropped
        self.linger = True
        self._flush()

    def _close_after_answers(self) -> None:
        self.closing = True  # what arrives from now on is read and dropped
        self.linger = True
        if self.pending:
            self.pending[-1].keep_alive = False
        else:
            self._close()

    def _close(self) -> None:
        self.closing = True
        self.front.connections.discard(self)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.linger and transport.can_write_eof():
            # The client may still be sending what we refused: closing now would
            # reset the connection and lose our answer in its receive buffer. Send
            # the answer and FIN, drop what arrives, close for good a little later.
            transport.write_eof()
            self.front.loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()

    def _hand_over(self, data: bytes) -> None:
        """Give the connection, and the bytes read of its next request, to aiohttp."""
        if self.pending:
            # Answers to capture requests are still due: hand over once they are written.
            self.held = data
            self.handover_waiting = True
            if self.transport is not None and not self.paused:
                self.paused = True
                self.transport.pause_reading()
            return
        transport = self.transport
        assert transport is not None
        self.closing = True
        self.front.connections.discard(self)
        protocol = self.front.aiohttp_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.paused:
            transport.resume_reading()
        protocol.data_received(data)


class _Refused(Exception):
    """Raised from an llhttp callback to stop parsing a request that broke a limit."""


def _too_large(config: Config) -> Reply:
    return Reply(413, f"body larger than {config.hard_max_body_bytes} bytes\n".encode())


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # llhttp refuses it
    return None


def _expects_continue(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"expect" and value.strip().lower() == b"100-continue"
        for name, value in headers
    )


class Front:
    """The front server's shared state: settings, capture steps, open connections."""

    def __init__(
        self,
        config: Config,
        capture: Capture,
        aiohttp_protocol: Callable[[], asyncio.Protocol],
        shutdown_timeout_s: float,
    ) -> None:
        self.config = config
        self.capture = capture
        self.aiohttp_protocol = aiohttp_protocol
        self.shutdown_timeout_s = shutdown_timeout_s
        self.loop = asyncio.get_running_loop()
        self.connections: set[FrontProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self._sweeper: asyncio.Task[None] | None = None

    def protocol(self) -> FrontProtocol:
        return FrontProtocol(self)

    def spawn(self, coro: collections.abc.Coroutine[None, None, None]) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def start(self) -> None:
        self._sweeper = self.loop.create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            deadline = time.monotonic() - IDLE_TIMEOUT_S
            for connection in list(self.connections):
                if not connection.pending and connection.last_active < deadline:
                    connection._close()

    async def stop(self) -> None:
        """Close idle connections now; let the others finish their answers first."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for connection in list(self.connections):
            if not connection.pending and connection.request is None:
                connection._close()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=self.shutdown_timeout_s)


BACKLOG = 128  # connections waiting to be accepted, as aiohttp's default


class ListenError(Exception):
    """The capture address cannot be listened on: in use, not this host's, unknown."""


def listen(config: Config) -> list[socket.socket]:
    """Bind the configured address, once for the whole service.

    Without SO_REUSEPORT: a second program on the same port (another ``serve``)
    fails to start instead of silently taking part of the traffic. Workers of
    ``serve --workers N`` inherit these sockets from their parent.
    """
    host = config.host or None  # "" is every address, as in asyncio
    shown = f"[{config.host}]" if ":" in config.host else config.host or "*"
    sockets: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(
            host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(
            f"cannot listen on {shown}:{config.port}: {exc.strerror or exc}"
        ) from None
    return sockets


class FrontSite(web.BaseSite):
    """The listening sockets with the front protocol on them.

    An aiohttp site so that ``runner.cleanup()`` stops it first: no new
    connections, the front's answers finish, and only then do aiohttp's own
    connections close and the app's resources (writer, pool, database) go.
    """

    def __init__(self, runner: web.AppRunner, front: Front, sockets: list[socket.socket]) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self.front = front
        self.sockets = sockets
        self.servers: list[asyncio.Server] = []

    @property
    def name(self) -> str:
        host, port = self.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    async def start(self) -> None:
        await super().start()  # registers the site with the runner, which stops it
        loop = asyncio.get_running_loop()
        for sock in self.sockets:
            server = await loop.create_server(self.front.protocol, sock=sock, backlog=BACKLOG)
            self.servers.append(server)
        self.front.start()

    async def stop(self) -> None:
        for server in self.servers:
            server.close()  # stop accepting
        await super().stop()
        await self.front.stop()


async def start(
    runner: web.AppRunner,
    config: Config,
    *,
    sockets: list[socket.socket],
    shutdown_timeout_s: float,
) -> FrontSite:
    """Serve the front protocol on ``sockets`` (from ``listen``); after ``runner.setup()``."""
    server = runner.server
    assert server is not None
    front = Front(config, Capture.of(runner.app), server, shutdown_timeout_s)
    site = FrontSite(runner, front, sockets)
    await site.start()
    return site
