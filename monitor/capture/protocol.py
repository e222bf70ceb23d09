"""The capture listener's HTTP/1.1 protocol: reading requests with llhttp
(httptools), flow control, writing answers in order, time limits and closing.

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
``capture_max_in_flight`` requests wait for their answers; more get 503. What each
request is answered is decided in ``monitor.capture.answers``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING, cast

import httptools
import structlog

from monitor.capture.answers import LOGGED_PATH, CaptureAnswers
from monitor.capture.steps import Reply
from monitor.capture.wire import (
    BAD_REQUEST,
    BODY_TIMEOUT,
    EMPTY_LINES,
    HEAD_TIMEOUT,
    HEAD_TOO_LARGE,
    INTERNAL_ERROR,
    FrontRequest,
    Refused,
    content_length,
    expects_continue,
    render,
    too_large,
)
from monitor.model.paths import CAPTURE_PREFIX

if TYPE_CHECKING:
    from monitor.capture.front import Front

log = structlog.get_logger(__name__)

IDLE_TIMEOUT_S = 75.0  # as aiohttp's keep-alive timeout
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


class FrontProtocol(CaptureAnswers, asyncio.Protocol):
    """One client connection to the capture listener."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer: str | None = None
        self.request: FrontRequest | None = None  # the one being read
        self.pending: collections.deque[FrontRequest] = collections.deque()  # unanswered, in order
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
        self.request = FrontRequest()
        if self.reading_since is None:  # pipelined: begun in the same read
            self.reading_since = time.monotonic()

    def on_url(self, url: bytes) -> None:
        request = self.request
        assert request is not None
        request.target += url
        if len(request.target) > self.front.config.max_url_bytes:
            request.refusal = Reply(414, b"request target too long\n")
            raise Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.request
        assert request is not None
        request.fields += 1
        if len(name) + len(value) + 2 > self.front.config.max_header_bytes:
            request.refusal = Reply(431, b"header field too large\n")
            raise Refused
        if request.fields > MAX_HEADERS:
            request.refusal = Reply(431, b"too many header fields\n")
            raise Refused
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
        length = content_length(request.headers)
        if length is not None and length > self.front.config.hard_max_body_bytes:
            request.refusal = too_large(self.front.config.hard_max_body_bytes)
            raise Refused
        if not request.target.startswith(_PREFIX):
            request.elsewhere = True  # its body is read and dropped; no 100 Continue
        elif expects_continue(request.headers):
            self._decide_before_body(request)

    def on_body(self, body: bytes) -> None:
        request = self.request
        assert request is not None
        request.body_size += len(body)
        config = self.front.config
        if request.body_size > config.hard_max_body_bytes:
            request.refusal = too_large(config.hard_max_body_bytes)
            raise Refused
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

    def _answer(self, request: FrontRequest, reply: Reply) -> None:
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

    def close_if_idle(self) -> None:
        """On stop: a connection with no request being read or answered closes now."""
        if not self.pending and self.request is None:
            self._close()

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
            self.front.metrics.record_capture(refusal.status, False, 0.0)
        request = self.request or FrontRequest()
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
