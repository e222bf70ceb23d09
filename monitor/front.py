"""The capture listener's own HTTP/1.1 protocol: postbacks, probes, nothing else.

A postback needs none of aiohttp's web layer (Request and Response objects, router,
middlewares, signals), which costs several times what parsing the request with
llhttp (httptools) and writing a ready-made response does. So the capture listener
speaks HTTP itself: ``ANY /p/{token}[/{tail}]`` goes through the capture steps
(``monitor.capture``), ``GET|HEAD /healthz`` and ``/readyz`` answer as on the
management listener (a balancer in front of capture asks this port), and any other
path gets a plain 404. The management side (web views, API, metrics) is aiohttp on
its own listener.

HTTP details kept: keep-alive and HTTP/1.0 close, pipelined requests answered in
order, chunked bodies (their trailers are read and dropped: a trailer is not a
header), ``Expect: 100-continue`` (sent only once load, token and rate limit say the
body is wanted; a refusal goes out instead), no body for HEAD, 1xx, 204 and 304,
limits on the target (414), header fields and the whole head (431), body (413) and
empty lines before a request (400), 400 for what llhttp refuses, a time limit on the
head and on the body (408), and an idle timeout.

Flow control, as uvicorn's httptools protocol: reading pauses while the transport's
write buffer is above its high-water mark (a client that does not read its answers)
or MAX_PENDING answers are due (a client that pipelines without waiting), and bytes
already read wait unparsed until the answers drain. Across the process, at most
``capture_max_in_flight`` requests wait for their answers; more get 503.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import Any, cast

import httptools
import structlog
from aiohttp import web

from monitor import metrics
from monitor.capture import (
    HIT_ID_HEADER,
    NOT_STORED,
    RETRY_AFTER_S,
    UNKNOWN_TOKEN,
    Capture,
    Received,
    Reply,
    stored_reply,
    token_of,
)
from monitor.config import Config
from monitor.endpoints import Endpoint
from monitor.health import ALIVE
from monitor.hit import Hit
from monitor.listen import BACKLOG
from monitor.paths import CAPTURE_PREFIX, HEALTHZ, READYZ
from monitor.writer import WriterClosed, WriterOverloaded

log = structlog.get_logger(__name__)

IDLE_TIMEOUT_S = 75.0  # as aiohttp's keep-alive timeout
SWEEP_EVERY_S = 2.0  # how late past its deadline a slow or idle connection may close
LINGER_S = 2.0  # after refusing a request mid-body, as aiohttp's lingering close
MAX_HEADERS = 100  # header and trailer fields together
MAX_PENDING = 32  # pipelined requests read ahead of their answers before reading pauses
# The parser gets a read this much at a time, so MAX_PENDING holds within one read:
# at most FEED_BYTES // 18 more requests (the shortest is 18 bytes) complete per step.
FEED_BYTES = 4096
# RFC 9112 asks a server to ignore at least one empty line before a request line;
# past this many bytes of them the client is not sending HTTP.
MAX_EMPTY_LINE_BYTES = 256
_PREFIX = CAPTURE_PREFIX.encode("ascii")
_PROBES = (HEALTHZ.encode("ascii"), READYZ.encode("ascii"))
JSON = "application/json; charset=utf-8"
LOGGED_PATH = f"{CAPTURE_PREFIX}<token>"  # tokens are secrets and never logged
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
INTERNAL_ERROR = Reply(500, b"internal server error\n")
BAD_REQUEST = Reply(400, b"bad request\n")
EMPTY_LINES = Reply(400, b"too many empty lines before the request line\n")
HEAD_TOO_LARGE = Reply(431, b"request head too large\n")
HEAD_TIMEOUT = Reply(408, b"request head not received in time\n")
BODY_TIMEOUT = Reply(408, b"request body not received in time\n")
BUSY = Reply(503, b"capture is busy, retry later\n", retry_after=RETRY_AFTER_S)
NOT_FOUND = Reply(404, b"not found: this listener serves /p/{token}, /healthz and /readyz\n")
ALIVE_REPLY = Reply(200, json.dumps(ALIVE).encode(), JSON)
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
    """The response bytes for a reply, as RFC 9110 has them.

    HEAD gets the headers a GET would and no body. 1xx, 204 and 304 have no body
    whatever the endpoint's configured one; 1xx and 204 no Content-Length either
    (304's is the length a 200 would have). A body where none may be would be read
    as the start of the next response on a keep-alive connection.
    """
    status = reply.status
    informational_or_no_content = status < 200 or status == 204
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\nContent-Type: ".encode("ascii"),
        reply.content_type.encode("utf-8"),
    ]
    if not informational_or_no_content:
        lines.append(f"\r\nContent-Length: {len(reply.body)}".encode("ascii"))
    lines += [b"\r\nDate: ", _date.value()]
    if reply.hit_id is not None:
        lines.append(f"\r\n{HIT_ID_HEADER}: {reply.hit_id}".encode("ascii"))
    if reply.retry_after is not None:
        lines.append(f"\r\nRetry-After: {reply.retry_after}".encode("ascii"))
    if close:
        lines.append(b"\r\nConnection: close")
    lines.append(b"\r\n\r\n")
    if not (head or informational_or_no_content or status == 304):
        lines.append(reply.body)
    return b"".join(lines)


class _Request:
    """One request on a front connection, from its first byte to its answer."""

    __slots__ = (
        "admitted",
        "answer",
        "body",
        "body_size",
        "deciding",
        "elsewhere",
        "fields",
        "head",
        "head_bytes",
        "head_done",
        "headers",
        "in_flight",
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
        self.fields = 0  # header and trailer fields seen
        self.head_bytes = 0  # bytes read while the head was incomplete (an upper bound)
        self.head_done = False
        self.body: list[bytes] = []
        self.body_size = 0
        self.keep_alive = True
        self.head = False
        self.elsewhere = False  # not for /p/: a probe or a 404, its body dropped
        # Decided before the body when the sender waits for 100 Continue.
        self.admitted: Endpoint | None = None
        self.deciding = False  # the database is asked about its token
        # Set when the request is refused while it is still being read.
        self.refusal: Reply | None = None
        self.in_flight = False  # counted in Front.in_flight until answered
        self.started = 0.0
        self.answer: bytes | None = None


class FrontProtocol(asyncio.Protocol):
    """One client connection to the capture listener."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer: str | None = None
        self.request: _Request | None = None  # the one being read
        self.pending: collections.deque[_Request] = collections.deque()  # unanswered, in order
        self.empty_line_bytes = 0  # skipped before the next request line
        self.backlog = b""  # read while reading should have paused, not yet parsed
        self.feeding = False  # inside parser.feed_data: its callbacks must not feed again
        self.closing = False
        self.linger = False
        self.eof = False
        self.paused = False  # reading
        self.write_paused = False  # the transport's buffer is above its high-water mark
        # When the request being read began, or its body did; None between requests.
        # The sweeper answers 408 past head_timeout_s or body_timeout_s.
        self.reading_since: float | None = None
        # Set when a request completes or the answers are written: a connection
        # that completes no request for IDLE_TIMEOUT_S is closed.
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
        return bool(self.pending or self.backlog)  # True keeps the transport open

    def pause_writing(self) -> None:
        """The client is not reading its answers: stop reading its requests."""
        self.write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._flush()  # reads again, and closes if that was all the client had to say

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.backlog:  # a read that was under way when reading paused: keep the order
            self.backlog += data
            return
        if self.request is None:  # between requests
            data = self._skip_empty_lines(data)
            if not data:
                return
        self._feed(data)

    # ------------------------------------------------------------ reading

    def _skip_empty_lines(self, data: bytes) -> bytes:
        """``data`` from the next request line on; empty lines before it are dropped
        (in C), and too many of them are refused."""
        request_line = data.lstrip(b"\r\n")
        self.empty_line_bytes += len(data) - len(request_line)
        if self.empty_line_bytes > MAX_EMPTY_LINE_BYTES:
            self._refuse_and_close(EMPTY_LINES)
            return b""
        if request_line:
            self.empty_line_bytes = 0
            if self.reading_since is None:
                self.reading_since = time.monotonic()
        return request_line

    def _must_wait(self) -> bool:
        return self.write_paused or len(self.pending) >= MAX_PENDING

    def _feed(self, data: bytes) -> None:
        """Parse ``data`` a slice at a time; what is left when reading must pause waits
        in ``backlog`` for the answers to drain."""
        view = memoryview(data) if len(data) > FEED_BYTES else data  # no copies of slices
        offset = 0
        self.feeding = True
        try:
            while offset < len(view):
                if self._must_wait():
                    self.backlog = bytes(view[offset:])
                    break
                chunk = view[offset : offset + FEED_BYTES]
                offset += len(chunk)
                self.parser.feed_data(chunk)
                request = self.request
                if request is not None and not request.head_done:
                    request.head_bytes += len(chunk)
                    if request.head_bytes > self.front.max_head_bytes:
                        # llhttp hands a header value over only once it ends: bound
                        # what waits for it.
                        self._refuse_and_close(HEAD_TOO_LARGE)
                if self.closing:
                    return
        except httptools.HttpParserUpgrade:
            # CONNECT or an Upgrade request: capture switches no protocols. Answer
            # what was read as a plain request, then close.
            if self.request is not None:
                self._refuse_and_close(None)
            else:
                self._close_after_answers()
            return
        except httptools.HttpParserError:
            self._refuse_and_close(self.request.refusal if self.request else None)
            return
        finally:
            self.feeding = False
        if self._must_wait():
            self._pause_reading()  # the kernel holds the rest, not us

    def _pause_reading(self) -> None:
        transport = self.transport
        if not self.paused and transport is not None and not transport.is_closing():
            self.paused = True
            transport.pause_reading()

    def _resume_reading(self) -> None:
        """Read again once the answers have drained: first what was held back, then the socket."""
        if (
            not self.paused
            or self.closing
            or self.feeding
            or self.write_paused
            or len(self.pending) > MAX_PENDING // 2
        ):
            return
        if self.backlog:
            data, self.backlog = self.backlog, b""
            self._feed(data)
            if self.backlog or self.closing or self._must_wait():
                return
        self.paused = False
        if self.reading_since is not None:  # the wait was ours, not the client's
            self.reading_since = time.monotonic()
        assert self.transport is not None
        self.transport.resume_reading()

    # ------------------------------------------------------------ llhttp callbacks

    def on_message_begin(self) -> None:
        self.request = _Request()
        if self.reading_since is None:  # pipelined: begun in the same read
            self.reading_since = time.monotonic()

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
        request.fields += 1
        if len(name) + len(value) + 2 > self.front.config.max_header_bytes:
            request.refusal = Reply(431, b"header field too large\n")
            raise _Refused
        if request.fields > MAX_HEADERS:
            request.refusal = Reply(431, b"too many header fields\n")
            raise _Refused
        # After the head, llhttp reports a chunked body's trailers here: they are
        # dropped, so a trailer can never pass for a header (X-Forwarded-For, ...).
        if not request.head_done:
            request.headers.append((name, value))

    def on_headers_complete(self) -> None:
        request = self.request
        assert request is not None
        request.head_done = True
        self.reading_since = time.monotonic()  # the body's time starts
        request.method = self.parser.get_method().decode("ascii", "replace")
        request.head = request.method == "HEAD"
        length = _content_length(request.headers)
        if length is not None and length > self.front.config.hard_max_body_bytes:
            request.refusal = _too_large(self.front.config)
            raise _Refused
        if not request.target.startswith(_PREFIX):
            request.elsewhere = True  # its body is read and dropped; no 100 Continue
        elif _expects_continue(request.headers):
            self._decide_before_body(request)

    def _decide_before_body(self, request: _Request) -> None:
        """The sender waits for 100 Continue before its body: decide first (load, token,
        rate limit). A refusal is sent instead, and the connection closes unread."""
        admitted = self._admit_cached(request)
        if isinstance(admitted, Reply):
            request.refusal = admitted
            raise _Refused
        if admitted is None:  # only the database knows the token: it answers, in a task
            request.deciding = True
            self.front.spawn(self._after_lookup(request))
        else:
            request.admitted = admitted
            self._invite_body(request)

    def _invite_body(self, request: _Request) -> None:
        if not self.pending and not request.body_size and self.transport:
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
        if kept < config.max_body_bytes and not request.elsewhere:
            request.body.append(body[: config.max_body_bytes - kept])

    def on_message_complete(self) -> None:
        request = self.request
        assert request is not None
        self.request = None
        self.reading_since = None
        self.last_active = time.monotonic()
        request.keep_alive = self.parser.should_keep_alive()
        request.started = time.perf_counter()
        self.pending.append(request)
        try:
            if request.elsewhere:
                self._answer_elsewhere(request)
            else:
                self._start(request)
        except Exception:
            log.exception("capture.failed", path=LOGGED_PATH)
            self._finish(request, INTERNAL_ERROR)

    # ------------------------------------------------------------ answering

    def _admit_cached(self, request: _Request) -> Endpoint | Reply | None:
        """What can be decided without I/O: load, the path, the cached token's rate
        limit. None when only the database knows the token."""
        front = self.front
        if front.in_flight >= front.config.capture_max_in_flight:
            return BUSY
        token = _token(request)
        if token is None:
            return UNKNOWN_TOKEN
        return front.capture.admit_cached(token)

    def _answer_elsewhere(self, request: _Request) -> None:
        """The probes, as the management listener answers them; any other path, 404."""
        path = request.target.partition(b"?")[0]
        if path not in _PROBES or request.method not in ("GET", "HEAD"):
            self._answer(request, NOT_FOUND)
        elif path == _PROBES[0]:
            self._answer(request, ALIVE_REPLY)
        else:
            self.front.spawn(self._answer_readiness(request))

    async def _answer_readiness(self, request: _Request) -> None:
        try:
            status, body = await self.front.readiness()
            reply = Reply(status, json.dumps(body).encode(), JSON)
        except Exception:
            log.exception("readiness.failed")
            reply = INTERNAL_ERROR
        self._answer(request, reply)

    def _start(self, request: _Request) -> None:
        """Take a complete request. With its endpoint in the cache (nearly always)
        nothing here awaits: the hit goes to the writer, and the answer is written
        from the writer's future's callback; no task per request."""
        admitted: Endpoint | Reply | None = request.admitted
        if admitted is None and not request.deciding:
            admitted = self._admit_cached(request)
        request.in_flight = True
        self.front.in_flight += 1
        if request.deciding:  # the lookup begun for its 100 Continue takes it
            return
        if admitted is None:  # not in the cache: the database is asked, in a task
            request.deciding = True
            self.front.spawn(self._after_lookup(request))
        else:
            self._take(request, admitted)

    async def _after_lookup(self, request: _Request) -> None:
        """The database's word on a token not in the cache: for a complete request, or
        for one whose sender waits for 100 Continue."""
        try:
            token = _token(request)
            assert token is not None
            admitted: Endpoint | Reply = await self.front.capture.admit(token)
        except Exception:
            log.exception("capture.failed", path=LOGGED_PATH)
            admitted = INTERNAL_ERROR
        request.deciding = False
        try:
            if request.in_flight:  # complete
                self._take(request, admitted)
            elif self.request is request and not self.closing:  # its sender waits
                if isinstance(admitted, Reply):
                    self._refuse_and_close(admitted)
                else:
                    request.admitted = admitted
                    self._invite_body(request)
        except Exception:
            log.exception("capture.failed", path=LOGGED_PATH)
            self._finish(request, INTERNAL_ERROR)

    def _take(self, request: _Request, admitted: Endpoint | Reply) -> None:
        if isinstance(admitted, Reply):
            self._finish(request, admitted)
        else:
            self._store(request, admitted)

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
            log.exception("capture.failed", path=LOGGED_PATH)
            self._finish(request, INTERNAL_ERROR)

    def _finish(self, request: _Request, reply: Reply) -> None:
        if request.in_flight:
            request.in_flight = False
            self.front.in_flight -= 1
        metrics.record_capture(
            reply.status, reply.hit_id is not None, time.perf_counter() - request.started
        )
        self._answer(request, reply)

    def _answer(self, request: _Request, reply: Reply) -> None:
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
        if not pending:
            self.last_active = time.monotonic()
        self._resume_reading()
        if self.feeding or self.closing or self.pending or self.backlog:
            return
        if self.eof or self.closing_when_idle():
            self._close()

    def closing_when_idle(self) -> bool:
        return self.front.stopping and self.request is None

    def check_deadlines(self, now: float) -> None:
        """From the sweeper: answer 408 to a request read too slowly; close an idle connection."""
        since = self.reading_since
        if since is not None:
            if self.paused:  # the wait is ours (answers due), not the client's
                return
            request = self.request
            if request is not None and request.head_done:
                if now - since > self.front.config.body_timeout_s:
                    self._refuse_and_close(BODY_TIMEOUT)
            elif now - since > self.front.config.head_timeout_s:
                self._refuse_and_close(HEAD_TIMEOUT)
        elif not self.pending and now - self.last_active > IDLE_TIMEOUT_S:
            self._close()

    def _refuse_and_close(self, refusal: Reply | None) -> None:
        """Answer a request llhttp or a limit refused (after those before it), then close."""
        reply = refusal or BAD_REQUEST
        if refusal is not None:  # a limit, counted as capture errors; llhttp's 400s are not
            metrics.record_capture(refusal.status, False, 0.0)
        request = self.request or _Request()
        self.request = None
        self.reading_since = None
        request.keep_alive = False
        request.answer = render(reply, head=request.head, close=True)
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


class _Refused(Exception):
    """Raised from an llhttp callback to stop parsing a request that broke a limit."""


def _token(request: _Request) -> str | None:
    return token_of(request.target.partition(b"?")[0])


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
    """The capture listener's shared state: settings, capture steps, open connections.

    ``readiness`` answers ``/readyz``: (status, JSON body), as the management side's.
    """

    def __init__(
        self,
        config: Config,
        capture: Capture,
        readiness: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
        shutdown_timeout_s: float,
    ) -> None:
        self.config = config
        self.capture = capture
        self.readiness = readiness
        self.shutdown_timeout_s = shutdown_timeout_s
        # The request line and the equivalent of four maximal header fields.
        self.max_head_bytes = config.max_url_bytes + 4 * config.max_header_bytes
        self.loop = asyncio.get_running_loop()
        self.connections: set[FrontProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0  # capture requests read and not yet answered, all connections
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
        """Deadlines of every connection, checked here rather than by a timer per request."""
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            now = time.monotonic()
            for connection in list(self.connections):
                connection.check_deadlines(now)

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


class CaptureSite(web.BaseSite):
    """The capture listener's sockets with the front protocol on them.

    An aiohttp site so that ``runner.cleanup()`` stops it first: no new
    connections, capture's answers finish, and only then do the management
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
