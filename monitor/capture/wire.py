"""What the capture listener reads and writes besides the capture steps: the state of
one request as llhttp reports it, the checks on its head, and the response bytes.
"""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from http import HTTPStatus

from monitor.capture.steps import HIT_ID_HEADER, RETRY_AFTER_S, Reply, token_of
from monitor.storage.endpoints import Endpoint
from monitor.storage.readiness import ALIVE

JSON = "application/json; charset=utf-8"
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


class FrontRequest:
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


class Refused(Exception):
    """Raised from an llhttp callback to stop parsing a request that broke a limit."""


def request_token(request: FrontRequest) -> str | None:
    return token_of(request.target.partition(b"?")[0])


def too_large(limit_bytes: int) -> Reply:
    return Reply(413, f"body larger than {limit_bytes} bytes\n".encode())


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # llhttp refuses it
    return None


def expects_continue(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"expect" and value.strip().lower() == b"100-continue"
        for name, value in headers
    )
