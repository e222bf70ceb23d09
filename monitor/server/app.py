"""The application factory: routes, middlewares and resources in dependency order.

``create_app`` does no I/O. It takes the process's metrics (``serve`` makes them;
a test's app gets its own) and hands them to the forwarder and ``/metrics``. Each
resource is a cleanup context (set up, yield, tear down): database (embedded
server, migrations, pool), admin token, endpoint cache, writer. Teardown runs in
reverse, so the writer drains before the pool closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from monitor.config import Config
from monitor.forwarding.forwarder import LEASE_MARGIN_S, Forwarder
from monitor.forwarding.outbound import OutboundClient
from monitor.forwarding.replays import ReplayJobs
from monitor.metrics import Metrics
from monitor.model.paths import HEALTHZ, READYZ
from monitor.notifying.evaluator import Evaluator
from monitor.notifying.notifier import Notifier
from monitor.ratelimit import RateLimiter
from monitor.reconciling.runner import Reconciler
from monitor.rules.report import open_report
from monitor.storage import senders as sender_learning
from monitor.storage.alerts import AlertStore, EvaluatorLock
from monitor.storage.amount_outliers import AmountOutliers, rule_from_cache
from monitor.storage.audit import AuditStore
from monitor.storage.channels import ChannelStore
from monitor.storage.charts import ChartStore, fill_forever
from monitor.storage.db import close_pool, connect, create_pool, database
from monitor.storage.endpoint_cache import EndpointCache
from monitor.storage.endpoints import EndpointStore
from monitor.storage.hits import HitStore
from monitor.storage.migrate import migrate
from monitor.storage.partitions import ensure_partitions
from monitor.storage.reconciliations import ReconciliationStore
from monitor.storage.retention import maintain_forever
from monitor.storage.sender_store import SenderStore
from monitor.storage.share_links import ShareLinkStore
from monitor.storage.spool import Spool
from monitor.storage.writer import HitWriter
from monitor.web import health, metrics_route
from monitor.web.api import alerts as alert_api
from monitor.web.api import audit as audit_api
from monitor.web.api import channels as channel_api
from monitor.web.api import charts as charts_api
from monitor.web.api import clicks as click_api
from monitor.web.api import docs as api_docs
from monitor.web.api import forwards as forward_api
from monitor.web.api import reconciliations as reconciliation_api
from monitor.web.api import replays as replay_api
from monitor.web.api import routes as api
from monitor.web.api import senders as senders_api
from monitor.web.api import share_links as share_api
from monitor.web.api import tokens as token_api
from monitor.web.appkeys import (
    ADMIN_TOKEN,
    ALERTS,
    AUDIT,
    CHANNELS,
    CHARTS,
    CONFIG,
    DATABASE_KEEPER,
    DATABASE_URL,
    ENDPOINT_CACHE,
    ENDPOINTS,
    EVALUATOR,
    FORWARDER,
    HITS,
    METRICS,
    NOTIFIER,
    OUTBOUND,
    POOL,
    RATE_LIMITER,
    RECONCILER,
    RECONCILIATIONS,
    REPLAYS,
    SENDERS,
    SHARE_LINKS,
    WRITER,
)
from monitor.web.auth import announce_admin_token, load_or_create_admin_token
from monitor.web.middleware import service_middleware
from monitor.web.views import audit as audit_views
from monitor.web.views import channels as channel_views
from monitor.web.views import clicks as click_views
from monitor.web.views import reconcile as reconcile_views
from monitor.web.views import reconciliations as reconciliation_views
from monitor.web.views import replays as replay_views
from monitor.web.views import site as views
from monitor.web.views import tester as tester_views
from monitor.web.views import tokens as token_views

log = structlog.get_logger(__name__)

SPOOL_DIR = "spool"

CLIENT_MAX_API_BYTES = 1024**2


def create_app(config: Config, metrics: Metrics | None = None) -> web.Application:
    """The management app and the components it starts; ``metrics`` are the process's
    (made after its multiprocess directory is prepared), or new ones when not given."""
    app = web.Application(
        middlewares=[service_middleware],
        client_max_size=CLIENT_MAX_API_BYTES,
    )
    app[CONFIG] = config
    app[RATE_LIMITER] = RateLimiter()
    app[METRICS] = metrics if metrics is not None else Metrics(config.node)
    app.cleanup_ctx.extend(
        [
            database_ctx,
            admin_token_ctx,
            endpoints_ctx,
            reconciler_ctx,
            forwarder_ctx,
            notifier_ctx,
            evaluator_ctx,
            writer_ctx,
        ]
    )
    metrics_route.setup(app)  # after the writer's context: it listens to commits
    app.router.add_get(HEALTHZ, health.healthz)
    app.router.add_get(READYZ, health.readyz)
    api.add_routes(app)
    forward_api.add_routes(app)
    replay_api.add_routes(app)
    reconciliation_api.add_routes(app)
    share_api.add_routes(app)
    senders_api.add_routes(app)
    charts_api.add_routes(app)
    token_api.add_routes(app)
    channel_api.add_routes(app)
    audit_api.add_routes(app)
    alert_api.add_routes(app)
    click_api.add_routes(app)
    api_docs.add_routes(app)
    views.setup(app)  # web pages, their live stream's LISTEN context, security headers
    tester_views.add_routes(app)  # after views.setup: uses its templates
    replay_views.add_routes(app)
    reconcile_views.add_routes(app)
    reconciliation_views.add_routes(app)
    token_views.add_routes(app)
    channel_views.add_routes(app)
    audit_views.add_routes(app)
    click_views.add_routes(app)
    return app


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    async with database(app[CONFIG], keep_running=True) as found:
        url = found.url
        app[DATABASE_KEEPER] = found.keeper
        conn = await connect(url)
        try:
            await migrate(conn)
            await ensure_partitions(conn)
        finally:
            await conn.close()
        app[DATABASE_URL] = url
        app[POOL] = await create_pool(url)
        maintenance = asyncio.create_task(
            maintain_forever(app[POOL], app[CONFIG].retention_days), name="partitions"
        )
        chart_fill = asyncio.create_task(fill_forever(app[POOL]), name="chart-fill")
        try:
            yield
        finally:
            for task in (chart_fill, maintenance):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await close_pool(app[POOL])


async def admin_token_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    if config.admin_token is not None:
        app[ADMIN_TOKEN] = config.admin_token
    else:
        token, created = await asyncio.to_thread(load_or_create_admin_token, config.data_dir)
        app[ADMIN_TOKEN] = token
        if created:
            announce_admin_token(token, config.data_dir, config.management_url, config.base_url)
    yield


async def endpoints_ctx(app: web.Application) -> AsyncIterator[None]:
    store = EndpointStore(app[POOL])
    cache = EndpointCache(store, app[DATABASE_URL])
    await cache.reload_all()
    app[ENDPOINTS] = store
    app[ENDPOINT_CACHE] = cache
    app[HITS] = HitStore(app[POOL])
    app[CHARTS] = ChartStore(app[POOL])
    app[SHARE_LINKS] = ShareLinkStore(app[POOL])
    app[SENDERS] = SenderStore(app[POOL])
    app[AUDIT] = AuditStore(app[POOL])
    listener = asyncio.create_task(cache.listen_forever(), name="endpoint-listener")
    try:
        yield
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def reconciler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Reconciliation runs of this process; at startup, runs a dead process left
    running are marked failed ("interrupted"), and at shutdown this process's are."""
    store = ReconciliationStore(app[POOL])
    interrupted = await store.fail_interrupted()
    if interrupted:
        log.warning("reconciliation.interrupted", runs=interrupted)
    reconciler = Reconciler(app[POOL], store, open_report)
    app[RECONCILIATIONS] = store
    app[RECONCILER] = reconciler
    try:
        yield
    finally:
        await reconciler.close()


async def forwarder_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbound client and the forwarder; set up before the writer, which attaches it."""
    config = app[CONFIG]
    client = OutboundClient.from_config(config)
    await client.start()
    forwarder = Forwarder(
        app[POOL],
        app[ENDPOINT_CACHE],
        client,
        concurrency=config.forward_concurrency,
        backoff_base_s=config.forward_backoff_s,
        backoff_max_s=config.forward_backoff_max_s,
        poll_s=config.forward_poll_s,
        lease_s=config.outbound_timeout_s + LEASE_MARGIN_S,
        metrics=app[METRICS],
    )
    app[OUTBOUND] = client
    app[FORWARDER] = forwarder
    # Bulk replays send as the forwarder does: per endpoint, at most its concurrency.
    replays = ReplayJobs(
        app[POOL], app[HITS], app[ENDPOINT_CACHE], client,
        dsn=app[DATABASE_URL], concurrency=config.forward_concurrency,
    )  # fmt: skip
    app[REPLAYS] = replays
    forwarder.start()
    try:
        yield
    finally:
        await replays.close()
        await forwarder.close()
        await client.close()
        log.info("forwarder.stopped")


async def notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    """Channels and the notifier; it sends through the forwarder's outbound client
    (the same guard and limits), so it is set up after it and torn down before it."""
    store = ChannelStore(app[POOL])
    app[CHANNELS] = store
    app[NOTIFIER] = Notifier(store, app[OUTBOUND], app[METRICS])
    yield


async def evaluator_ctx(app: web.Application) -> AsyncIterator[None]:
    """The alert evaluator: every process runs its loop, the one holding the
    deployment's advisory lock evaluates (``notifying.evaluator``). After the notifier
    it sends through; stopped before it (teardown runs in reverse)."""
    config = app[CONFIG]
    store = AlertStore(app[POOL])
    app[ALERTS] = store
    evaluator = Evaluator(
        lock=EvaluatorLock(app[DATABASE_URL]),
        alerts=store,
        hits=app[HITS],
        runs=app[RECONCILIATIONS],
        endpoints=app[ENDPOINT_CACHE].endpoints,
        notifier=app[NOTIFIER],
        management_url=config.management_url,
        interval_s=config.alert_interval_s,
    )
    app[EVALUATOR] = evaluator
    evaluator.start()
    try:
        yield
    finally:
        await evaluator.close()


async def writer_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    spool = await asyncio.to_thread(Spool, config.data_dir / SPOOL_DIR, config.spool_max_bytes)
    writer = HitWriter(
        app[POOL],
        batch_max_hits=config.batch_max_hits,
        batch_max_wait_s=config.batch_max_wait_ms / 1000,
        queue_max_hits=config.queue_max_hits,
        commit_timeout_s=config.commit_timeout_s,
        spool=spool,
        amount_outliers=AmountOutliers(rule_from_cache(app[ENDPOINT_CACHE])),
        senders=sender_learning.Senders(sender_learning.rule_from_cache(app[ENDPOINT_CACHE])),
    )
    # Before the spool drains: spooled hits of forwarding endpoints need outbox rows too.
    app[FORWARDER].attach(writer)
    if spool.has_pending():
        # Hits acknowledged before a crash or an outage go in before any new one.
        log.info("spool.draining", pending_hits=spool.pending_hits)
        left = await writer.drain_spool()
        log.info("spool.drained", pending_hits=left)
    writer.start()
    app[WRITER] = writer
    try:
        yield
    finally:
        await writer.close()
        log.info("writer.drained")
