"""The notifier: one call delivers a notification to channels, retrying and logging.

The alert evaluator (a later slice) calls ``await notifier.send(channel_ids,
notification)``: each channel still there gets it, at most ``concurrency`` at a
time; each attempt is logged in ``channel_deliveries`` and counted; transient
failures (``delivery.Attempt.retryable``) are tried again after doubling,
jittered delays up to ``max_attempts``. It never raises for a far end's failure:
the result per channel says what happened.

Retries wait in this process's memory, not in an outbox: a notification is about
now, and one that would arrive after a restart is mostly stale. A process that
stops mid-retry loses the rest of that notification's attempts (the log shows the
ones made).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from monitor.forwarding.outbound import OutboundClient
from monitor.metrics import Metrics
from monitor.model.notification import Notification
from monitor.notifying.delivery import Attempt, attempt
from monitor.rules.forwards import backoff_s
from monitor.storage.channels import Channel, ChannelStore, Delivery

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 4
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 60.0
CONCURRENCY = 8
SMTP_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What delivering one notification to one channel came to, after any retries."""

    channel_id: int
    ok: bool
    attempts: int
    status: int | None
    error: str | None
    latency_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel_id,
            "ok": self.ok,
            "attempts": self.attempts,
            "status": self.status,
            "error": self.error,
            "latency_ms": self.latency_ms,
        }


class Notifier:
    """Delivers notifications to channels; one per server process."""

    def __init__(
        self,
        store: ChannelStore,
        client: OutboundClient,
        metrics: Metrics,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        concurrency: int = CONCURRENCY,
        smtp_timeout_s: float = SMTP_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.client = client
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.smtp_timeout_s = smtp_timeout_s
        self._slots = asyncio.Semaphore(concurrency)

    async def send(self, channel_ids: list[int], n: Notification) -> list[Outcome]:
        """Deliver ``n`` to each channel that still exists, concurrently (bounded);
        an outcome per channel, in id order. Raises only for the database."""
        channels = await self.store.get_many(sorted(set(channel_ids)))
        return list(await asyncio.gather(*(self.deliver(c, n) for c in channels)))

    async def deliver(
        self, channel: Channel, n: Notification, *, max_attempts: int | None = None
    ) -> Outcome:
        """``n`` to one channel, with retries; every attempt logged and counted."""
        message_id = f"msg_{uuid.uuid4().hex}"
        limit = max_attempts or self.max_attempts
        number, last = 0, None
        async with self._slots:
            while True:
                number += 1
                last = await attempt(
                    self.client, channel.kind, channel.config, n, message_id,
                    smtp_timeout_s=self.smtp_timeout_s,
                )  # fmt: skip
                await self._log(channel, n, message_id, number, last)
                if last.ok or not last.retryable or number >= limit:
                    break
                await asyncio.sleep(backoff_s(number, self.backoff_base_s, self.backoff_max_s))
        outcome = "delivered" if last.ok else "failed"
        self.metrics.record_notification(channel.kind, outcome)
        if not last.ok:
            log.warning(
                "notification.failed", channel_id=channel.id, kind=channel.kind,
                attempts=number, status=last.status, error=last.error,
            )  # fmt: skip
        return Outcome(channel.id, last.ok, number, last.status, last.error, last.latency_ms)

    async def test(self, channel_id: int, link: str) -> Outcome:
        """A test notification to one channel now, once (no retries: the person who
        asked is waiting for the answer)."""
        channel = await self.store.get(channel_id)
        n = Notification(
            endpoint_id=None,
            endpoint_name="(none: a test)",
            condition="test",
            state="firing",
            sentence=f"A test notification from Postback Monitor to the channel {channel.name!r}.",
            link=link,
            occurred_at=datetime.now(UTC),
        )
        return await self.deliver(channel, n, max_attempts=1)

    async def _log(
        self, channel: Channel, n: Notification, message_id: str, number: int, a: Attempt
    ) -> None:
        delivery = Delivery(
            message_id, n.headline[:300], number, a.started_at, a.ok, a.status, a.error,
            a.latency_ms,
        )  # fmt: skip
        try:
            await self.store.log_delivery(channel.id, delivery)
        except Exception as exc:  # the database may be restarting: delivery goes on
            log.warning("notification.log_failed", channel_id=channel.id, error=str(exc))
