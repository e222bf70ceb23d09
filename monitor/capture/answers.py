"""What the capture listener answers: the capture steps for ``/p/``, the probes, 404.

``CaptureAnswers`` is the deciding half of ``FrontProtocol``: given a request read
by the protocol, it admits it (load, token, rate limit, before the body when the
sender waits for 100 Continue), hands the hit to the writer and answers from the
writer's callback. How the bytes are read and written is the protocol's half.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from abc import ABC, abstractmethod
from functools import partial
from typing import TYPE_CHECKING

import structlog

from monitor.capture.steps import NOT_STORED, UNKNOWN_TOKEN, Received, Reply, stored_reply
from monitor.capture.wire import (
    ALIVE_REPLY,
    BUSY,
    CONTINUE,
    INTERNAL_ERROR,
    JSON,
    NOT_FOUND,
    FrontRequest,
    Refused,
    request_token,
)
from monitor.model.hit import Hit
from monitor.model.paths import CAPTURE_PREFIX, HEALTHZ, READYZ
from monitor.storage.endpoints import Endpoint
from monitor.storage.writer import WriterClosed, WriterOverloaded

if TYPE_CHECKING:
    from monitor.capture.front import Front

log = structlog.get_logger(__name__)

LOGGED_PATH = f"{CAPTURE_PREFIX}<token>"  # tokens are secrets and never logged
_PROBES = (HEALTHZ.encode("ascii"), READYZ.encode("ascii"))


class CaptureAnswers(ABC):
    """The answers to one connection's requests; the protocol reads and writes."""

    front: Front
    transport: asyncio.Transport | None
    request: FrontRequest | None  # the one being read
    pending: collections.deque[FrontRequest]  # unanswered, in order
    closing: bool
    peer: str | None  # the client's address, as the socket has it

    @abstractmethod
    def _answer(self, request: FrontRequest, reply: Reply) -> None:
        """Write ``reply`` as ``request``'s answer, in request order."""

    @abstractmethod
    def _refuse_and_close(self, refusal: Reply | None) -> None:
        """Answer the request being read with ``refusal``, then close."""

    def _decide_before_body(self, request: FrontRequest) -> None:
        """The sender waits for 100 Continue before its body: decide first (load, token,
        rate limit). A refusal is sent instead, and the connection closes unread."""
        admitted = self._admit_cached(request)
        if isinstance(admitted, Reply):
            request.refusal = admitted
            raise Refused
        if admitted is None:  # only the database knows the token: it answers, in a task
            request.deciding = True
            self.front.spawn(self._after_lookup(request))
        else:
            request.admitted = admitted
            self._invite_body(request)

    def _invite_body(self, request: FrontRequest) -> None:
        if not self.pending and not request.body_size and self.transport:
            self.transport.write(CONTINUE)

    def _admit_cached(self, request: FrontRequest) -> Endpoint | Reply | None:
        """What can be decided without I/O: load, the path, the cached token's rate
        limit. None when only the database knows the token."""
        front = self.front
        if front.in_flight >= front.config.capture_max_in_flight:
            return BUSY
        token = request_token(request)
        if token is None:
            return UNKNOWN_TOKEN
        return front.capture.admit_cached(token)

    def _answer_elsewhere(self, request: FrontRequest) -> None:
        """The probes, as the management listener answers them; any other path, 404."""
        path = request.target.partition(b"?")[0]
        if path not in _PROBES or request.method not in ("GET", "HEAD"):
            self._answer(request, NOT_FOUND)
        elif path == _PROBES[0]:
            self._answer(request, ALIVE_REPLY)
        else:
            self.front.spawn(self._answer_readiness(request))

    async def _answer_readiness(self, request: FrontRequest) -> None:
        try:
            status, body = await self.front.readiness()
            reply = Reply(status, json.dumps(body).encode(), JSON)
        except Exception:
            log.exception("readiness.failed")
            reply = INTERNAL_ERROR
        self._answer(request, reply)

    def _start(self, request: FrontRequest) -> None:
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

    async def _after_lookup(self, request: FrontRequest) -> None:
        """The database's word on a token not in the cache: for a complete request, or
        for one whose sender waits for 100 Continue."""
        try:
            token = request_token(request)
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

    def _take(self, request: FrontRequest, admitted: Endpoint | Reply) -> None:
        if isinstance(admitted, Reply):
            self._finish(request, admitted)
        else:
            self._store(request, admitted)

    def _store(self, request: FrontRequest, endpoint: Endpoint) -> None:
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
        self, request: FrontRequest, endpoint: Endpoint, hit: Hit, future: asyncio.Future[None]
    ) -> None:
        # A failed write carries WriteFailed; cancelled cannot happen (nothing awaits it).
        failed = future.cancelled() or future.exception() is not None
        try:
            self._finish(request, NOT_STORED if failed else stored_reply(endpoint, hit))
        except Exception:  # a loop callback: nothing above would answer the request
            log.exception("capture.failed", path=LOGGED_PATH)
            self._finish(request, INTERNAL_ERROR)

    def _finish(self, request: FrontRequest, reply: Reply) -> None:
        if request.in_flight:
            request.in_flight = False
            self.front.in_flight -= 1
        self.front.metrics.record_capture(
            reply.status, reply.hit_id is not None, time.perf_counter() - request.started
        )
        self._answer(request, reply)
