"""The alert evaluator: one active per deployment, every ``interval_s``.

Every server process runs the loop; each interval it asks ``EvaluatorLock.hold``
whether it holds the deployment's advisory lock, and only the holder evaluates. When
the holder dies its lock connection closes and another process takes over within
an interval. Losing the lock connection is logged and retried, never fatal.

One evaluation: the alerting endpoints (from the endpoint cache, kept fresh by
NOTIFY), their figures in two set-based queries (hits and forwards in one,
reconciliation runs in the other), the open alerts in a third; the pure
``rules.alerts.decide`` says fire, resolve or remind for each watched condition; the
transition is written first (it succeeds only from the state seen, so a second
evaluator's duplicate changes nothing and sends nothing), then the notifier is
called. Open alerts of conditions no longer watched are resolved quietly.

The clock is passed in (``clock``), so a test can move time without patching globals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from monitor.model.notification import Notification
from monitor.notifying.notifier import Notifier
from monitor.rules import alerts as rules
from monitor.storage.alerts import AlertStore, EvaluatorLock
from monitor.storage.endpoints import Endpoint
from monitor.storage.hits import HitStore
from monitor.storage.reconciliations import ReconciliationStore

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Evaluator:
    """Decides and sends alerts while this process holds the evaluator lock."""

    def __init__(
        self,
        *,
        lock: EvaluatorLock,
        alerts: AlertStore,
        hits: HitStore,
        runs: ReconciliationStore,
        endpoints: Callable[[], list[Endpoint]],
        notifier: Notifier,
        management_url: str,
        interval_s: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.lock = lock
        self.alerts = alerts
        self.hits = hits
        self.runs = runs
        self.endpoints = endpoints
        self.notifier = notifier
        self.management_url = management_url
        self.interval_s = interval_s
        self.clock = clock
        # Evaluations made (while holding the lock): how a test waits for "several
        # more intervals" without guessing a sleep.
        self.passes = 0
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="alert-evaluator")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._sends):
            task.cancel()
        await asyncio.gather(*self._sends, return_exceptions=True)
        await self.lock.close()

    async def run_forever(self) -> None:
        while True:
            try:
                if await self.lock.hold():
                    await self.evaluate()
                    self.passes += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be restarting: next interval again
                log.exception("alerts.evaluation_failed")
            await asyncio.sleep(self.interval_s)

    async def evaluate(self) -> None:
        """One pass over every alerting endpoint."""
        now = self.clock()
        known = {e.id: e for e in self.endpoints()}
        by_endpoint: dict[int, list[rules.Firing]] = {}
        for alert in await self.alerts.firing():
            by_endpoint.setdefault(alert.endpoint_id, []).append(alert)
        # Open alerts of conditions an endpoint no longer watches. One of an endpoint
        # this process does not know is left alone: a deleted endpoint's rows cascade
        # away, and one created elsewhere reaches the cache with the next NOTIFY.
        quiet = [
            a.id
            for endpoint_id, firing in by_endpoint.items()
            if endpoint_id in known
            for a in rules.stale(known[endpoint_id].compiled.alerts, firing)
        ]
        if quiet:
            await self.alerts.resolve_quietly(quiet, now)
            log.info("alerts.resolved_quietly", alert_ids=quiet)
        active = [e for e in known.values() if e.compiled.alerts and e.compiled.alerts.conditions]
        if not active:
            return
        figures = await self._figures(active, now)
        for endpoint in active:
            settings = endpoint.compiled.alerts
            assert settings is not None
            firing = {a.condition: a for a in by_endpoint.get(endpoint.id, ())}
            for condition in settings.conditions:
                open_alert = firing.get(condition)
                got = rules.decide(condition, settings, figures[endpoint.id], open_alert, now)
                if got is not None:
                    await self._apply(endpoint, condition, got, open_alert, now)

    async def _figures(self, endpoints: list[Endpoint], now: datetime) -> dict[int, rules.Figures]:
        ids = [e.id for e in endpoints]
        windows = [e.compiled.alerts.window_s for e in endpoints]  # type: ignore[union-attr]
        counts = await self.hits.alert_figures(ids, windows, now)
        runs = {}
        if any(e.compiled.alerts.missing_postbacks_above is not None for e in endpoints):  # type: ignore[union-attr]
            runs = {r["endpoint_id"]: r for r in await self.runs.latest_per_endpoint()}
        result = {}
        for e in endpoints:
            c, run = counts.get(e.id, {}), runs.get(e.id)
            missing = None if run is None else (run["summary"] or {}).get("missing_postbacks")
            result[e.id] = rules.Figures(
                created_at=e.created_at,
                last_hit_at=c.get("last_hit_at"),
                hits=c.get("hits", 0),
                flagged=c.get("flagged", 0),
                duplicates=c.get("duplicates", 0),
                given_up=c.get("given_up", 0),
                run_id=None if run is None else run["run_id"],
                missing=missing,
            )
        return result

    async def _apply(
        self,
        endpoint: Endpoint,
        condition: str,
        decision: rules.Decision,
        firing: rules.Firing | None,
        now: datetime,
    ) -> None:
        """Write the transition; notify only when this call made it."""
        check = decision.check
        if decision.action == "fire":
            try:
                made = await self.alerts.fire(
                    endpoint.id, condition, now, decision.sentence, check.value, check.threshold
                ) is not None  # fmt: skip
            except asyncpg.ForeignKeyViolationError:  # deleted meanwhile
                made = False
            state = "firing"
        elif decision.action == "resolve":
            assert firing is not None
            made = await self.alerts.resolve(firing.id, now, check.value)
            state = "resolved"
        else:
            assert firing is not None
            made = await self.alerts.remind(firing.id, now, check.value, firing.last_notified_at)
            state = "firing"
        if not made:
            return
        log.info(
            "alerts.transition", endpoint_id=endpoint.id, condition=condition,
            action=decision.action, value=check.value, threshold=check.threshold,
        )  # fmt: skip
        settings = endpoint.compiled.alerts
        channel_ids = list(settings.channel_ids) if settings is not None else []
        if not channel_ids:
            return
        notification = Notification(
            endpoint_id=endpoint.id,
            endpoint_name=endpoint.name,
            condition=condition,
            state=state,
            sentence=decision.sentence,
            link=f"{self.management_url}/endpoints/{endpoint.id}",
            occurred_at=now,
        )
        # Sent in the background: a slow channel's retries must not hold up the
        # other endpoints' evaluation; the transition is already written.
        task = asyncio.create_task(self._send(channel_ids, notification))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, channel_ids: list[int], notification: Notification) -> None:
        try:
            await self.notifier.send(channel_ids, notification)
        except Exception:
            log.exception("alerts.send_failed", endpoint_id=notification.endpoint_id)
