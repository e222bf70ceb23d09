"""Prometheus metrics: every definition and how they are fed, as one object.

``Metrics`` holds every collector of a server process on its own registry. The
composition root makes one per process (``serve``, or ``create_app`` for a test's
app) and hands it to whoever records: the capture front, the forwarder, and the
management app (``metrics_route``), which also makes it a writer listener. There
is no module-level instance.

Three feeds, none of which touches capture or the writer: writer listeners count
what was stored (hits, flags, duplicates, last hit time, batch size, commit time;
test postbacks only under their own counter, so the series alerts read stay clean)
and what a full spool refused; the capture front times each request and counts
unknown tokens and rejected requests; gauges of the writer's queue and spool are
read each second and at scrape.

The endpoint series (info with the name, creation time, expected interval) are
read from the endpoint cache at scrape: ``metrics_endpoints``; the latest
reconciliation of each endpoint, from a snapshot of its table: ``metrics_reconciliation``.

Labels come from bounded sets only: the endpoint id, flag names from the rules,
a method class, a status class, a forward outcome, a channel kind and a
notification outcome, and on every series the node (``metrics_exposition``); never
request data, except two bounded, validated values on the payout counter: the
currency (an ISO 4217 code or "none") and the event (see ``event_label``). With
``PROMETHEUS_MULTIPROC_DIR`` set (``serve --workers N``) values live in files there
and ``metrics_exposition`` sums every worker's. prometheus-client decides
whether values are file-backed from that variable, so it must be in the process's
environment (or ``prepare_multiprocess`` called) before the process's ``Metrics``
is made; ``Metrics`` refuses to be made otherwise. ``GET /metrics``: ``metrics_route``.
"""

from __future__ import annotations

import collections
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path

import prometheus_client
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client import values as prom_values
from prometheus_client.metrics_core import Metric

from monitor.metrics_endpoints import EndpointCollector
from monitor.metrics_exposition import NodeLabelled, multiprocess_exposition
from monitor.metrics_reconciliation import ReconciliationCollector
from monitor.model.hit import Hit
from monitor.model.notification import CHANNEL_KINDS
from monitor.model.notification import OUTCOMES as NOTIFICATION_OUTCOMES

log = structlog.get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_PLAIN_0_0_4
METHOD_CLASSES = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
ERROR_STATUS_CLASSES = ("4xx", "5xx")
# Per forward attempt: delivered; retrying (failed, another attempt is due); failed
# (failed with no attempt left: the forward is given up); cancelled.
FORWARD_OUTCOMES = ("delivered", "retrying", "failed", "cancelled")
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS_HITS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
# Event values are the sender's: each endpoint gets the first this many distinct,
# plain ones (per process) as labels of the payout counter, and "other" after them.
# Real endpoints send a handful (lead, sale, rebill, ...); a sender making up a new
# value per hit must not make a new series per hit.
MAX_EVENT_LABELS_PER_ENDPOINT = 20
EVENT_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}")
NO_EVENT, OTHER_EVENT, NO_CURRENCY = "none", "other", "none"
# One hit reporting more than this is not counted: a counter never goes down, so one
# absurd amount would hide every real one on the revenue panels for good.
MAX_PAYOUT = 1e12
# Flags that say the hit may not come from the endpoint's sender at all: its amount
# is not revenue (anyone who learns a capture URL could post any amount).
UNTRUSTED_FLAGS = frozenset({"secret_mismatch", "ip_not_allowed"})

# Each counter with a timestamp series is twice the series for no use here.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric of the service on its own registry, and the ways to feed them.

    Make one per process, after its multiprocess directory (if any) is prepared:
    in multiprocess mode two instances in one process would overwrite each
    other's values in the shared files.
    """

    def __init__(self, node: str | None = None) -> None:
        # The node label of every series (metrics_exposition): --node-name, else the host name.
        self.node = node or socket.gethostname()
        self.directory = multiprocess_dir()  # None: values in memory, this process's only
        if self.directory is not None:
            # Metrics open their files there as they (and their labelled children) are built.
            Path(self.directory).mkdir(parents=True, exist_ok=True)
        if (self.directory is not None) != _file_backed():
            raise RuntimeError(
                f"{MULTIPROC_ENV} changed after prometheus_client chose its value class: "
                "call prepare_multiprocess before making Metrics"
            )
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.hits = Counter(
            "postback_monitor_hits",
            "Hits stored, by endpoint and method class (GET, POST, ... or other).",
            ["endpoint", "method"],
            registry=r,
        )
        self.flagged_hits = Counter(
            "postback_monitor_flagged_hits",
            "Hits stored with at least one flag, by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.flags = Counter(
            "postback_monitor_flags",
            "Flags raised on stored hits, by endpoint and flag.",
            ["endpoint", "flag"],
            registry=r,
        )
        self.duplicates = Counter(
            "postback_monitor_duplicates",
            "Hits stored as duplicates of an earlier click id and event, by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.test_hits = Counter(
            "postback_monitor_test_hits",
            "Test and ping postbacks stored (flagged test_traffic), by endpoint: counted "
            "here only, not in the hits, flags, duplicates, payout or last-hit series "
            "that alerts read.",
            ["endpoint"],
            registry=r,
        )
        self.last_hit = Gauge(
            "postback_monitor_last_hit_timestamp_seconds",
            "When the newest stored hit of each endpoint was received (Unix time).",
            ["endpoint"],
            registry=r,
            multiprocess_mode="max",
        )
        self.unknown_token = Counter(
            "postback_monitor_unknown_token_requests",
            "Requests to a capture URL whose token names no endpoint (answered 404).",
            registry=r,
        )
        self.capture_errors = Counter(
            "postback_monitor_capture_errors",
            "Capture requests answered without storing a hit (other than unknown "
            "tokens), by status class: 413 too large, 503 overloaded or database down.",
            ["status_class"],
            registry=r,
        )
        self.capture_seconds = Histogram(
            "postback_monitor_capture_duration_seconds",
            "Time from a capture request's arrival to its response being ready.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_size = Histogram(
            "postback_monitor_writer_batch_size_hits",
            "Hits per group-commit transaction.",
            buckets=BATCH_BUCKETS_HITS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "postback_monitor_writer_commit_duration_seconds",
            "Time to commit one batch, retries included.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.queued = Gauge(
            "postback_monitor_writer_queued_hits",
            "Hits waiting for the writer.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.spool_pending = Gauge(
            "postback_monitor_spool_pending_hits",
            "Acknowledged hits kept in the local spool, waiting for the database.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.database_up = Gauge(
            "postback_monitor_database_up",
            "1 when the database answered this process's probe (every 5 s), else 0.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.spool_refused = Counter(
            "postback_monitor_spool_refused_hits",
            "Hits answered 503 because the database could not take them and the local "
            "spool was at its size cap (--spool-max-bytes).",
            registry=r,
        )
        self.payout = Counter(
            "postback_monitor_payout",
            "Sum of the amounts of stored hits that are not duplicates, by endpoint, "
            "event and currency; hits flagged secret_mismatch or ip_not_allowed, or "
            "without a valid non-negative amount, add nothing.",
            ["endpoint", "event", "currency"],
            registry=r,
        )
        # Not file-backed: read from the endpoint cache at scrape (metrics_endpoints),
        # and from a snapshot of the reconciliations table (metrics_reconciliation).
        self.endpoint_series = EndpointCollector()
        r.register(self.endpoint_series)
        self.reconciliation_series = ReconciliationCollector()
        r.register(self.reconciliation_series)
        self.forwards = Counter(
            "postback_monitor_forwards",
            "Forwards of stored hits to their endpoint's target, by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.notifications = Counter(
            "postback_monitor_notifications",
            "Notifications sent to channels, by channel kind and outcome (delivered, or "
            "failed after its last attempt).",
            ["kind", "outcome"],
            registry=r,
        )
        # Series that exist from the start, so rates and alerts see zero, not nothing.
        for kind in CHANNEL_KINDS:
            for outcome in NOTIFICATION_OUTCOMES:
                self.notifications.labels(kind, outcome)
        for status_class in ERROR_STATUS_CLASSES:
            self.capture_errors.labels(status_class)
        self.last_hit_s: dict[str, float] = {}
        self.event_labels: dict[str, set[str]] = {}

    def observe_commit(self, hits: Sequence[Hit], seconds: float) -> None:
        """Writer committed-listener: count one committed batch."""
        self.batch_size.observe(len(hits))
        self.commit_seconds.observe(seconds)
        # Tallied first: one counter update per label set, not per hit.
        by_method: collections.Counter[tuple[str, str]] = collections.Counter()
        flagged: collections.Counter[str] = collections.Counter()
        by_flag: collections.Counter[tuple[str, str]] = collections.Counter()
        duplicates: collections.Counter[str] = collections.Counter()
        payout: collections.defaultdict[tuple[str, str, str], float] = collections.defaultdict(
            float
        )
        newest: dict[str, float] = {}
        tests: collections.Counter[str] = collections.Counter()
        for hit in hits:
            endpoint = str(hit.endpoint_id)
            if hit.is_test:
                # A test is not traffic: it must not hide a silence, raise a flagged
                # rate or add revenue. Its own counter shows that tests arrive.
                tests[endpoint] += 1
                continue
            by_method[endpoint, method_class(hit.method)] += 1
            flags = hit.all_flags()
            if flags:
                flagged[endpoint] += 1
            for flag in flags:
                by_flag[endpoint, str(flag["flag"])] += 1
            if hit.duplicate is not None:
                duplicates[endpoint] += 1
            elif hit.verdict.amount is not None and 0 <= hit.verdict.amount <= MAX_PAYOUT:
                # A negative amount (a refund) is no revenue, and a counter only grows.
                if not any(flag["flag"] in UNTRUSTED_FLAGS for flag in flags):
                    event = self.event_label(endpoint, hit.verdict.event)
                    currency = hit.verdict.currency or NO_CURRENCY
                    payout[endpoint, event, currency] += float(hit.verdict.amount)
            received_s = hit.received_at.timestamp()
            if received_s > newest.get(endpoint, 0.0):
                newest[endpoint] = received_s
        for (endpoint, method), n in by_method.items():
            self.hits.labels(endpoint, method).inc(n)
        for endpoint, n in flagged.items():
            self.flagged_hits.labels(endpoint).inc(n)
        for (endpoint, flag_name), n in by_flag.items():
            self.flags.labels(endpoint, flag_name).inc(n)
        for endpoint, n in duplicates.items():
            self.duplicates.labels(endpoint).inc(n)
        for endpoint, n in tests.items():
            self.test_hits.labels(endpoint).inc(n)
        for (endpoint, event, currency), amount in payout.items():
            self.payout.labels(endpoint, event, currency).inc(amount)
        for endpoint, received_s in newest.items():
            self.set_last_hit(endpoint, received_s)

    def event_label(self, endpoint: str, event: str | None) -> str:
        """The payout counter's event label: the event as sent while this endpoint has
        fewer than MAX_EVENT_LABELS_PER_ENDPOINT others and it is a plain word (no
        macro, no spaces, at most 40 characters); else "other"; "none" without one.

        Per process: with ``--workers N`` a rare event may count under its own name in
        one worker and as "other" in another; the sums over events stay exact."""
        if not event:
            return NO_EVENT
        seen = self.event_labels.setdefault(endpoint, set())
        if event in seen:
            return event
        if len(seen) >= MAX_EVENT_LABELS_PER_ENDPOINT or EVENT_LABEL.fullmatch(event) is None:
            return OTHER_EVENT
        seen.add(event)
        return event

    def set_last_hit(self, endpoint: str, received_s: float) -> None:
        # Never backwards: a replayed spool commits hits older than ones already counted.
        if received_s > self.last_hit_s.get(endpoint, 0.0):
            self.last_hit_s[endpoint] = received_s
            self.last_hit.labels(endpoint).set(received_s)

    def count_spool_refused(self, hits: int) -> None:
        """Writer spool-full listener: count hits refused because the spool was full."""
        self.spool_refused.inc(hits)

    def record_forward(self, endpoint_id: int, outcome: str) -> None:
        """Count one forward attempt's outcome (one of FORWARD_OUTCOMES) for an endpoint."""
        if outcome not in FORWARD_OUTCOMES:
            raise ValueError(f"unknown forward outcome {outcome!r}")
        self.forwards.labels(str(endpoint_id), outcome).inc()

    def record_notification(self, kind: str, outcome: str) -> None:
        """Count one notification's delivery to one channel, after its retries."""
        if kind not in CHANNEL_KINDS or outcome not in NOTIFICATION_OUTCOMES:
            raise ValueError(f"unknown notification kind or outcome {kind!r}, {outcome!r}")
        self.notifications.labels(kind, outcome).inc()

    def record_capture(self, status: int, captured: bool, seconds: float) -> None:
        """One capture request answered: on the capture hot path, so no more than this."""
        self.capture_seconds.observe(seconds)
        if captured:
            return
        if status == 404:
            self.unknown_token.inc()
        elif status >= 400:
            self.capture_errors.labels(status_class(status)).inc()

    def set_writer_gauges(self, queue_depth: int, spool_pending: int) -> None:
        """The writer's queue and spool, read each second and at scrape."""
        self.queued.set(queue_depth)
        self.spool_pending.set(spool_pending)

    def exposition(self) -> bytes:
        """The text format, each sample labelled with the node: this registry's, or in
        multiprocess mode every process's files summed (``/metrics`` reads those in a
        thread, with ``table_series`` collected on the loop first)."""
        if self.directory is not None:
            return multiprocess_exposition(self.directory, self.node, self.table_series())
        return prometheus_client.generate_latest(NodeLabelled(self.registry, self.node))

    def table_series(self) -> list[Metric]:
        """The series read from this process's view of the tables (the endpoint cache,
        the reconciliation snapshot). Call it on the event loop: the loop changes the
        cache, and a thread iterating it at that moment fails the scrape."""
        return [*self.endpoint_series.collect(), *self.reconciliation_series.collect()]


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _file_backed() -> bool:
    """Whether prometheus_client builds values in files (it chooses when imported)."""
    return bool(prom_values.ValueClass._multiprocess)


def prepare_multiprocess(directory: Path | str) -> None:
    """Switch this process (and the workers it starts) to multiprocess metrics in ``directory``.

    Call in the parent before starting workers, and before this process makes its
    ``Metrics`` if it makes one: it empties the directory, so counts from an
    earlier run are not added to this one.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus_client picks its value class at import; a Metrics made before this
    # call would keep counting in process memory, invisible to the other workers.
    prom_values.ValueClass = prom_values.get_value_class()  # type: ignore[no-untyped-call]


def mark_process_dead(pid: int, directory: Path | str | None = None) -> None:
    """Drop a dead worker's live gauges (queue depth, spool); its counters stay counted."""
    directory = directory or multiprocess_dir()
    if directory is not None:
        prom_multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def method_class(method: str) -> str:
    return method if method in METHOD_CLASSES else "other"


def status_class(status: int) -> str:
    return f"{status // 100}xx"
