"""The charts as server-side SVG: the endpoint page's hits, payout and delay charts
(also a fragment the live page fetches again), and the endpoints page's sparklines.

The geometry is worked out here and drawn by ``templates/_charts.html``: no script is
needed to see a chart, and each comes with its numbers in a table for screen readers
(and anyone who wants them). Bars are in a fixed viewBox stretched to the width
(``preserveAspectRatio="none"``), so the text stays HTML and readable at any width.
A bucket with no hits has no bar: silence shows as a gap.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from monitor.rules.charts import RANGES
from monitor.storage.charts import Bucket
from monitor.web.api.charts import chart_range as chart_range
from monitor.web.api.routes import endpoint_id
from monitor.web.appkeys import CHARTS, ENDPOINTS
from monitor.web.scopes import access_of
from monitor.web.views import render as pages

STEP = 10.0  # viewBox units per bucket
HEIGHT = 100.0
SPARK_STEP = 4.0
SPARK_HEIGHT = 20.0
RANGE_WORDS = {"1h": "last hour, per minute", "24h": "last 24 hours, per hour",
               "7d": "last 7 days, per hour"}  # fmt: skip


def add_routes(app: web.Application) -> None:
    app.router.add_get("/endpoints/{endpoint_id}/charts", charts_fragment)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^n at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def bars(values: list[float], top: float, step: float, height: float) -> list[dict[str, float]]:
    """Each value's bar (x, width, y, height) in a viewBox ``height`` tall, on ``top``."""
    gap = step * (0.2 if len(values) <= 60 else 0.12)
    out = []
    for i, v in enumerate(values):
        h = max(v, 0) / top * height
        out.append({"x": i * step + gap / 2, "w": step - gap, "y": height - h, "h": h})
    return out


def clock(bucket: Bucket, rng_key: str) -> str:
    """A bucket's start as an axis shows it in UTC (the page script shows local time)."""
    return bucket.start.strftime("%m-%d %H:%M" if rng_key == "7d" else "%H:%M")


def hits_chart(buckets: list[Bucket], rng_key: str) -> dict[str, Any]:
    top = nice_ceiling(max((b.hits for b in buckets), default=0))
    clean = bars([b.hits - b.flagged for b in buckets], top, STEP, HEIGHT)
    flagged = bars([b.flagged for b in buckets], top, STEP, HEIGHT)
    rows = []
    for i, (b, c, f) in enumerate(zip(buckets, clean, flagged, strict=True)):
        f = {**f, "y": c["y"] - f["h"]}  # stacked on the clean part
        flags = ", ".join(f"{name} {n}" for name, n in sorted(b.by_flag.items()))
        rows.append({"bucket": b, "clean": c, "flagged": f, "flags": flags, "x0": i * STEP,
                     "label": clock(b, rng_key)})  # fmt: skip
    total = sum(b.hits for b in buckets)
    peak = max(buckets, key=lambda b: b.hits)
    silent = sum(1 for b in buckets if b.hits == 0)
    return {
        "rows": rows,
        "top": int(top),
        "width": STEP * len(buckets),
        "height": HEIGHT,
        "total": total,
        "flagged": sum(b.flagged for b in buckets),
        "silent": silent,
        "peak": peak if peak.hits else None,
        "ticks": axis_ticks(buckets, rng_key),
    }


def axis_ticks(buckets: list[Bucket], rng_key: str) -> list[dict[str, Any]]:
    """Four times under the chart, at their place (percent of the width)."""
    n = len(buckets)
    picks = sorted({0, n // 3, 2 * n // 3, n - 1})
    return [{"bucket": buckets[i], "left": 100.0 * i / n, "label": clock(buckets[i], rng_key)}
            for i in picks]  # fmt: skip


def payout_charts(buckets: list[Bucket], currencies: list[str]) -> list[dict[str, Any]]:
    """One bar chart per currency: the sum of amounts per bucket."""
    out = []
    for currency in currencies:
        sums = [b.payouts.get(currency, Decimal(0)) for b in buckets]
        top = nice_ceiling(float(max(sums)))
        out.append({
            "currency": currency or "no currency",
            "code": currency,
            "total": sum(sums, Decimal(0)),
            "bars": [{"bucket": b, "sum": s, **bar} for b, s, bar in zip(
                buckets, sums, bars([float(s) for s in sums], top, STEP, HEIGHT), strict=True)],
            "top": top,
            "width": STEP * len(buckets),
        })  # fmt: skip
    return out


def delay_chart(delays: dict[str, Any] | None) -> dict[str, Any] | None:
    if delays is None:
        return None
    counted = sum(b["count"] for b in delays["buckets"])
    peak = max((b["count"] for b in delays["buckets"]), default=0) or 1
    return {
        **delays,
        "counted": counted,
        "rows": [{**b, "pct": 100.0 * b["count"] / peak} for b in delays["buckets"]],
    }


async def chart_context(
    request: web.Request, ident: int, param: str | None, key: str, *, with_delays: bool = True
) -> dict[str, Any]:
    """What ``_charts.html`` draws for the endpoint in range ``key``: the delay chart
    from ``param`` (its conversion_time_param), else from a reconciliation run, else
    none (``ChartStore.conversion_delays``); none at all unless ``with_delays``."""
    rng = RANGES[key]
    store = request.app[CHARTS]
    now = datetime.now(UTC)
    buckets = (await store.buckets([ident], rng, now))[ident]
    currencies = sorted({c for b in buckets for c in b.payouts})
    delays = None
    if with_delays:
        within = access_of(request).endpoint_ids
        delays = await store.conversion_delays(ident, param, buckets[0].start, within)
    return {
        "endpoint_id": ident,
        "range": key,
        "ranges": list(RANGES),
        "range_words": RANGE_WORDS[key],
        "hits": hits_chart(buckets, key),
        "payouts": payout_charts(buckets, currencies),
        "delays": delay_chart(delays),
    }


async def charts_fragment(request: web.Request) -> web.Response:
    """The charts alone, for the live page to swap in after new hits."""
    endpoint = await request.app[ENDPOINTS].get(endpoint_id(request))
    key = chart_range(request.query.get("chart") or None)
    param = endpoint.compiled.conversion_time_param
    context = {
        "charts": await chart_context(request, endpoint.id, param, key),
        "chart_nav": chart_links(f"/endpoints/{endpoint.id}", request.query, key),
    }
    return pages.render(request, "_charts_fragment.html", context)


def chart_links(page: str, query: Any, key: str) -> dict[str, Any]:
    """The range selector's links (the page with its other query values kept) and the
    address the live page fetches the charts from."""
    kept = {k: v for k, v in query.items() if k not in ("chart", "cursor")}
    return {
        "links": {k: f"{page}?{urlencode({**kept, 'chart': k})}" for k in RANGES},
        "live_src": f"{page}/charts?{urlencode({**kept, 'chart': key})}",
    }


def sparkline(buckets: list[Bucket]) -> dict[str, Any]:
    """The endpoints page's 24 hourly bars."""
    counts = [b.hits for b in buckets]
    top = nice_ceiling(max(counts, default=0))
    return {
        "counts": counts,
        "bars": bars([float(c) for c in counts], top, SPARK_STEP, SPARK_HEIGHT),
        "width": SPARK_STEP * len(counts),
        "height": SPARK_HEIGHT,
        "total": sum(counts),
        "silent": sum(1 for c in counts if c == 0),
        "start": buckets[0].start if buckets else None,
    }
