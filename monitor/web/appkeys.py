"""Typed application state: the app keys of the shared components, in one leaf module.

It names components only for the type checker, and imports none at run time; a web
component's own key lives beside it (``auth.SESSION``, ``live.LIVE``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.forwarding.forwarder import Forwarder
    from monitor.forwarding.outbound import OutboundClient
    from monitor.forwarding.replays import ReplayJobs
    from monitor.metrics import Metrics
    from monitor.notifying.evaluator import Evaluator
    from monitor.notifying.notifier import Notifier
    from monitor.ratelimit import RateLimiter
    from monitor.reconciling.runner import Reconciler
    from monitor.storage.alerts import AlertStore
    from monitor.storage.audit import AuditStore
    from monitor.storage.channels import ChannelStore
    from monitor.storage.charts import ChartStore
    from monitor.storage.embedded import KeepRunning
    from monitor.storage.endpoint_cache import EndpointCache
    from monitor.storage.endpoints import EndpointStore
    from monitor.storage.hits import HitStore
    from monitor.storage.reconciliations import ReconciliationStore
    from monitor.storage.sender_store import SenderStore
    from monitor.storage.share_links import ShareLinkStore
    from monitor.storage.writer import HitWriter

CONFIG: web.AppKey[Config] = web.AppKey("config")
ADMIN_TOKEN: web.AppKey[str] = web.AppKey("admin_token")
DATABASE_URL: web.AppKey[str] = web.AppKey("database_url")
DATABASE_KEEPER: web.AppKey[KeepRunning | None] = web.AppKey("database_keeper")
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool")
ENDPOINTS: web.AppKey[EndpointStore] = web.AppKey("endpoints")
ENDPOINT_CACHE: web.AppKey[EndpointCache] = web.AppKey("endpoint_cache")
HITS: web.AppKey[HitStore] = web.AppKey("hits")
CHARTS: web.AppKey[ChartStore] = web.AppKey("charts")
WRITER: web.AppKey[HitWriter] = web.AppKey("writer")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
FORWARDER: web.AppKey[Forwarder] = web.AppKey("forwarder")
OUTBOUND: web.AppKey[OutboundClient] = web.AppKey("outbound")
REPLAYS: web.AppKey[ReplayJobs] = web.AppKey("replays")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
RECONCILIATIONS: web.AppKey[ReconciliationStore] = web.AppKey("reconciliations")
RECONCILER: web.AppKey[Reconciler] = web.AppKey("reconciler")
SHARE_LINKS: web.AppKey[ShareLinkStore] = web.AppKey("share_links")
SENDERS: web.AppKey[SenderStore] = web.AppKey("senders")
CHANNELS: web.AppKey[ChannelStore] = web.AppKey("channels")
NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier")
AUDIT: web.AppKey[AuditStore] = web.AppKey("audit")
ALERTS: web.AppKey[AlertStore] = web.AppKey("alerts")
EVALUATOR: web.AppKey[Evaluator] = web.AppKey("evaluator")
