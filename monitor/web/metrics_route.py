"""``GET /metrics`` and what keeps its gauges fresh, on the management listener.

The definitions and the feeds from capture, the writer and forwarding live in
``metrics.Metrics``; the app's instance is ``app[METRICS]``, made by the composition
root. This module makes it the writer's listener, reads the app's components for
the gauges (the writer's queue and spool), points the endpoint series (info,
creation time, expected interval) at the endpoint cache and serves the exposition.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from monitor.metrics import CONTENT_TYPE
from monitor.metrics_endpoints import EndpointFacts
from monitor.metrics_exposition import multiprocess_exposition
from monitor.metrics_reconciliation import LatestRun
from monitor.storage.endpoint_cache import EndpointCache
from monitor.storage.reconciliations import ReconciliationStore
from monitor.web.appkeys import CONFIG, ENDPOINT_CACHE, METRICS, POOL, RECONCILIATIONS, WRITER

log = structlog.get_logger(__name__)

GAUGE_REFRESH_S = 1.0
# How often each process rereads the latest reconciliation of each endpoint (a run
# may finish in another process); one small query.
RECONCILIATION_REFRESH_S = 5.0
QUERY_TIMEOUT_S = 10.0
# The database probe behind postback_monitor_database_up: as readiness asks it.
DATABASE_PROBE_S = 5.0
DATABASE_PROBE_TIMEOUT_S = 2.0
# The last hit time per endpoint since a restart is seeded from the table, so
# "silent for 30 minutes" still holds across deploys. One index probe per endpoint.
# Test postbacks (is_test) are no traffic: the gauge counts real hits only.
LAST_HIT_PER_ENDPOINT = """
SELECT e.id, (SELECT max(h.received_at) FROM hits h
              WHERE h.endpoint_id = e.id AND NOT h.is_test) AS last_hit
FROM endpoints e
"""


def refresh_gauges(app: web.Application) -> None:
    writer = app.get(WRITER)
    if writer is not None:
        app[METRICS].set_writer_gauges(writer.queue_depth, writer.spool_pending)


async def metrics_handler(request: web.Request) -> web.Response:
    token = request.app[CONFIG].metrics_token
    if token is not None:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode("utf-8", "surrogateescape"), token.encode()
        ):
            raise web.HTTPUnauthorized(
                text="a valid metrics token is required (Authorization: Bearer ...)\n",
                headers={"WWW-Authenticate": 'Bearer realm="postback-monitor metrics"'},
            )
    refresh_gauges(request.app)
    metrics = request.app[METRICS]
    if metrics.directory is None:
        body = metrics.exposition()
    else:
        # Every worker's files are read in a thread; the table series read the endpoint
        # cache, which this loop changes, so they are collected here first.
        body = await asyncio.to_thread(
            multiprocess_exposition, metrics.directory, metrics.node, metrics.table_series()
        )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def seed_last_hits(app: web.Application) -> None:
    """Take each endpoint's last hit time from the table (at start)."""
    try:
        async with asyncio.timeout(QUERY_TIMEOUT_S):
            rows = await app[POOL].fetch(LAST_HIT_PER_ENDPOINT)
    except Exception as exc:
        # Metrics must not stop the service: hits stored from now on still count.
        log.warning("metrics.seed_failed", error=f"{type(exc).__name__}: {exc}")
        return
    for row in rows:
        if row["last_hit"] is not None:
            app[METRICS].set_last_hit(str(row["id"]), row["last_hit"].timestamp())


def endpoint_facts(cache: EndpointCache, management_url: str) -> list[EndpointFacts]:
    """The endpoint series' view of the cache: every endpoint, never-hit ones too."""
    return [
        EndpointFacts(
            id=endpoint.id,
            name=endpoint.name,
            preset=str(endpoint.compiled.document.get("preset") or ""),
            url=f"{management_url}/endpoints/{endpoint.id}",
            created_s=endpoint.created_at.timestamp(),
            expected_interval_s=endpoint.compiled.expected_interval_s,
        )
        for endpoint in sorted(cache.endpoints(), key=lambda e: e.id)
    ]


async def latest_runs(store: ReconciliationStore) -> list[LatestRun]:
    return [
        LatestRun(r["endpoint_id"], r["run_id"], r["finished_at"].timestamp(), r["summary"])
        for r in await store.latest_per_endpoint()
    ]


async def _refresh_runs_forever(app: web.Application, snapshot: list[LatestRun]) -> None:
    """Keep ``snapshot`` (what the reconciliation series show) current; a failed
    read keeps the last one and is logged, never ends the loop."""
    while True:
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow the cancel
            # that stops this loop when it lands as the query finishes (gh-86296),
            # and the loop would run on while the app waits for it at shutdown.
            async with asyncio.timeout(QUERY_TIMEOUT_S):
                snapshot[:] = await latest_runs(app[RECONCILIATIONS])
        except Exception:  # an outage or a bad row: keep the last snapshot, try again
            log.warning("metrics.reconciliations_unread", exc_info=True)
        await asyncio.sleep(RECONCILIATION_REFRESH_S)


async def _probe_database_forever(app: web.Application) -> None:
    """Keep postback_monitor_database_up current: an outage with no postbacks
    arriving (so no spooling) must still be seen."""
    metrics, pool = app[METRICS], app[POOL]
    while True:
        try:
            async with asyncio.timeout(DATABASE_PROBE_TIMEOUT_S):
                await pool.fetchval("SELECT 1")
            metrics.database_up.set(1)
        except Exception as exc:  # refused, timed out, pool closing: down for this probe
            metrics.database_up.set(0)
            log.debug("metrics.database_probe_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(DATABASE_PROBE_S)


async def _refresh_forever(app: web.Application) -> None:
    while True:
        refresh_gauges(app)
        await asyncio.sleep(GAUGE_REFRESH_S)


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Listen to the writer's commits, seed last-hit times, keep the gauges fresh,
    read the endpoint series from the cache (kept current by LISTEN in every process)."""
    metrics = app[METRICS]
    app[WRITER].committed_listeners.append(metrics.observe_commit)
    app[WRITER].spool_full_listeners.append(metrics.count_spool_refused)
    cache, management_url = app[ENDPOINT_CACHE], app[CONFIG].management_url
    metrics.endpoint_series.source = lambda: endpoint_facts(cache, management_url)
    runs: list[LatestRun] = []
    metrics.reconciliation_series.source = lambda: runs
    await seed_last_hits(app)
    refreshers = [
        asyncio.create_task(_refresh_forever(app), name="metrics-gauges"),
        asyncio.create_task(_probe_database_forever(app), name="metrics-database-probe"),
        asyncio.create_task(_refresh_runs_forever(app, runs), name="metrics-reconciliations"),
    ]
    try:
        yield
    finally:
        for refresher in refreshers:
            refresher.cancel()
        for refresher in refreshers:
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        # Left registered: hits the writer commits while draining still count.


def setup(app: web.Application) -> None:
    """Add metrics to an app: call after the writer's cleanup context is registered."""
    app.cleanup_ctx.append(metrics_ctx)
    app.router.add_get("/metrics", metrics_handler)
