"""Reconciliation's matching: a run's report rows against captured hits, in SQL.

The report is in ``reconciliation_rows`` (COPY'd by the run); everything here is
set-based, a handful of statements in one transaction, so a million rows cost no
round trip each and Postgres picks hash joins over the scratch table (ANALYZE'd
first).

Semantics (README, Reconcile a network report):

- A report row's key is its click id (exact) and, when the report has an event
  column, its event compared case-insensitively (a blank event matches a hit
  without one). Without an event column every hit of the click id is a capture of
  that key.
- The captures of a key are the hits of the run's endpoints with that key,
  received in the window or up to ``MATCH_SLACK`` either side of it (a conversion at
  23:59 posted back at 00:01 is still matched, and so is a capture stamped before
  its conversion by a network whose clock or time zone is off). The first capture (by arrival) is
  the match; each later one is one ``duplicate_postback``.
- ``missing_postback``: one item per report row whose key has no capture.
- ``amount_mismatch`` / ``currency_mismatch``: a report row against its key's first
  capture, only when both sides have the value (hits stored before amounts were kept
  have none, so they are never an amount mismatch); amounts differ by more than the
  tolerance, currencies case-insensitively.
- ``unexpected_postback``: a hit with a click id received in the window, not flagged
  ``duplicate_click_id``, whose key is not in the report.
- Test hits (flagged ``test_traffic``, ``hits.is_test``) take no part: a network's
  report never lists its test postbacks, so they are neither unexpected nor the
  capture that matches a report row (a real hit of that key still is).
- A key the report repeats is matched once; its extra rows are counted in
  ``repeated_report_rows`` and every row of it counts as matched or missing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from monitor.rules.charts import DELAY_BOUNDS_S, delay_buckets_json

# How far outside the window a capture still matches a report row (not unexpected ones).
MATCH_SLACK = timedelta(days=1)
# work_mem of the matching transaction only (runs are few; see ``match``).
MATCH_WORK_MEM = "256MB"
KINDS = (
    "missing_postback",
    "unexpected_postback",
    "amount_mismatch",
    "currency_mismatch",
    "duplicate_postback",
)

# The key's event part, for report rows (r) and hits (h or c), with and without an
# event column in the report.
ROW_EVENT = {True: "lower(coalesce(r.event, ''))", False: "''"}
HIT_EVENT = {True: "lower(coalesce(h.event, ''))", False: "''"}

REPORT_JSON = """jsonb_build_object('line', r.line, 'click_id', r.click_id, 'event', r.event,
    'amount', r.amount::text, 'currency', r.currency, 'time', r.time)"""
CAPTURED_JSON = """jsonb_build_object('hit_id', {t}.id, 'endpoint_id', {t}.endpoint_id,
    'received_at', {t}.received_at, 'event', {t}.event, 'amount', {t}.amount::text,
    'currency', {t}.currency, 'duplicate', {t}.duplicate)"""
IS_DUPLICATE = """h.flags @> '[{"flag": "duplicate_click_id"}]'"""
WINDOW = (
    "h.received_at >= coalesce($3::timestamptz, '-infinity')"
    " AND h.received_at < coalesce($4::timestamptz, 'infinity')"
)

CAPTURES = """
CREATE TEMP TABLE recon_caps ON COMMIT DROP AS
SELECT h.id, h.endpoint_id, h.received_at, h.click_id, {hit_ev} AS ev, h.event,
    h.amount, h.currency, {is_dup} AS duplicate,
    row_number() OVER (PARTITION BY h.click_id, {hit_ev} ORDER BY h.received_at, h.id) AS n
FROM hits h
WHERE h.endpoint_id = ANY($2::bigint[]) AND h.click_id IS NOT NULL AND {window}
  AND NOT h.is_test
  AND (h.click_id, {hit_ev}) IN (
    SELECT r.click_id, {row_ev} FROM reconciliation_rows r WHERE r.run_id = $1)
"""
MISSING = """
INSERT INTO reconciliation_items (run_id, kind, click_id, event, report)
SELECT $1, 'missing_postback', r.click_id, r.event, {report}
FROM reconciliation_rows r
WHERE r.run_id = $1 AND NOT EXISTS (
    SELECT 1 FROM recon_caps c WHERE c.click_id = r.click_id AND c.ev = {row_ev})
ORDER BY r.line
"""
MISMATCH = """
INSERT INTO reconciliation_items (run_id, kind, click_id, event, report, captured, hit_ids)
SELECT $1, '{kind}', r.click_id, r.event, {report}, jsonb_build_array({captured}),
    ARRAY[c.id]
FROM reconciliation_rows r
JOIN recon_caps c ON c.click_id = r.click_id AND c.ev = {row_ev} AND c.n = 1
WHERE r.run_id = $1 AND {differs}
ORDER BY r.line
"""
AMOUNT_DIFFERS = (
    "r.amount IS NOT NULL AND c.amount IS NOT NULL AND abs(r.amount - c.amount) > $2::numeric"
)
CURRENCY_DIFFERS = (
    "r.currency IS NOT NULL AND c.currency IS NOT NULL AND upper(r.currency) <> upper(c.currency)"
)
DUPLICATES = """
INSERT INTO reconciliation_items (run_id, kind, click_id, event, report, captured, hit_ids)
SELECT $1, 'duplicate_postback', click_id, event, report, captured, ARRAY[id]
FROM (
    SELECT DISTINCT ON (c.id) c.id, c.click_id, c.event, c.ev, c.n, {report} AS report,
        jsonb_build_array({captured}) AS captured
    FROM recon_caps c
    JOIN reconciliation_rows r ON r.run_id = $1 AND r.click_id = c.click_id AND {row_ev} = c.ev
    WHERE c.n > 1
    ORDER BY c.id, r.line
) d
ORDER BY click_id, ev, n
"""
UNEXPECTED = """
INSERT INTO reconciliation_items (run_id, kind, click_id, event, captured, hit_ids)
SELECT $1, 'unexpected_postback', h.click_id, h.event,
    jsonb_build_array({captured}), ARRAY[h.id]
FROM (SELECT h.*, false AS duplicate FROM hits h
      WHERE h.endpoint_id = ANY($2::bigint[]) AND h.click_id IS NOT NULL AND {window}
        AND NOT {is_dup} AND NOT h.is_test) h
WHERE NOT EXISTS (
    SELECT 1 FROM reconciliation_rows r
    WHERE r.run_id = $1 AND r.click_id = h.click_id AND {row_ev} = {hit_ev})
ORDER BY h.received_at, h.id
"""
COUNTS = """
SELECT
    (SELECT count(*) FROM reconciliation_rows r WHERE r.run_id = $1) AS report_rows,
    (SELECT count(*) FROM (SELECT r.click_id, {row_ev} FROM reconciliation_rows r
                           WHERE r.run_id = $1 GROUP BY 1, 2) k) AS report_keys,
    (SELECT coalesce(jsonb_object_agg(kind, n), '{{}}') FROM (
        SELECT kind, count(*) AS n FROM reconciliation_items WHERE run_id = $1 GROUP BY kind
    ) k) AS kinds
"""
# The delays of matched rows with a time: percentiles, and counts per delay bucket
# (width_bucket over rules.charts.DELAY_BOUNDS_S, $2, so the buckets are the param
# chart's), one array of len($2) + 1 counts, from one scan of the join.
DELAYS = """
WITH x AS MATERIALIZED (
    SELECT extract(epoch FROM c.received_at - r.time)::float8 AS d
    FROM reconciliation_rows r
    JOIN recon_caps c ON c.click_id = r.click_id AND c.ev = {row_ev} AND c.n = 1
    WHERE r.run_id = $1 AND r.time IS NOT NULL
)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY d) AS p95, max(d) AS max,
    (SELECT array_agg(coalesce(k.n, 0) ORDER BY i)
     FROM generate_series(0, cardinality($2::float8[])) AS i
     LEFT JOIN (SELECT width_bucket(d, $2::float8[]) AS b, count(*) AS n FROM x GROUP BY 1) k
        ON k.b = i) AS buckets
FROM x
"""


async def match(
    conn: asyncpg.Connection,
    run_id: int,
    endpoint_ids: list[int],
    since: datetime | None,
    until: datetime | None,
    *,
    tolerance: Decimal,
    has_event: bool,
    has_time: bool,
) -> dict[str, Any]:
    """Write the run's items and return its summary; one transaction, so a run that
    fails midway leaves no half of its items."""
    row_ev, hit_ev = ROW_EVENT[has_event], HIT_EVENT[has_event]
    match_since = None if since is None else since - MATCH_SLACK
    match_until = None if until is None else until + MATCH_SLACK
    window = (since, until)
    async with conn.transaction():
        # Times in the items' JSON are written as UTC, whatever the server's zone.
        await conn.execute("SET LOCAL TimeZone = 'UTC'")
        # The joins and the window's sort are over up to millions of rows: in memory
        # they are hash joins and one sort; with the default 4MB they spill to disk.
        await conn.execute(f"SET LOCAL work_mem = '{MATCH_WORK_MEM}'")
        await conn.execute("ANALYZE reconciliation_rows")
        captures = CAPTURES.format(hit_ev=hit_ev, row_ev=row_ev, is_dup=IS_DUPLICATE, window=WINDOW)
        await conn.execute(captures, run_id, endpoint_ids, match_since, match_until)
        await conn.execute("ANALYZE recon_caps")
        await conn.execute(MISSING.format(report=REPORT_JSON, row_ev=row_ev), run_id)
        for kind, differs in (
            ("amount_mismatch", AMOUNT_DIFFERS),
            ("currency_mismatch", CURRENCY_DIFFERS),
        ):
            sql = MISMATCH.format(
                kind=kind,
                report=REPORT_JSON,
                captured=CAPTURED_JSON.format(t="c"),
                row_ev=row_ev,
                differs=differs,
            )
            args: tuple[Any, ...] = (run_id, tolerance) if kind == "amount_mismatch" else (run_id,)
            await conn.execute(sql, *args)
        duplicates = DUPLICATES.format(
            report=REPORT_JSON, captured=CAPTURED_JSON.format(t="c"), row_ev=row_ev
        )
        await conn.execute(duplicates, run_id)
        unexpected = UNEXPECTED.format(
            captured=CAPTURED_JSON.format(t="h"),
            window=WINDOW,
            is_dup=IS_DUPLICATE,
            row_ev=row_ev,
            hit_ev=hit_ev,
        )
        await conn.execute(unexpected, run_id, endpoint_ids, *window)
        counts = await conn.fetchrow(COUNTS.format(row_ev=row_ev), run_id)
        delays = None
        if has_time:
            delays = await conn.fetchrow(DELAYS.format(row_ev=row_ev), run_id, list(DELAY_BOUNDS_S))
    return summary(counts, delays)


def summary(counts: asyncpg.Record, delays: asyncpg.Record | None) -> dict[str, Any]:
    """The run's summary document (the API's ``summary``)."""
    kinds = counts["kinds"]
    missing = kinds.get("missing_postback", 0)
    delay = buckets = None
    if delays is not None and delays["max"] is not None:
        delay = {k: round(delays[k], 3) for k in ("p50", "p95", "max")}
        buckets = delay_buckets_json(list(delays["buckets"]))
    return {
        "report_rows": counts["report_rows"],
        "matched": counts["report_rows"] - missing,
        "missing_postbacks": missing,
        "unexpected_postbacks": kinds.get("unexpected_postback", 0),
        "amount_mismatches": kinds.get("amount_mismatch", 0),
        "currency_mismatches": kinds.get("currency_mismatch", 0),
        "duplicate_postbacks": kinds.get("duplicate_postback", 0),
        "unparsed_rows": kinds.get("unparsed_row", 0),
        "repeated_report_rows": counts["report_rows"] - counts["report_keys"],
        "delay_seconds": delay,
        # The whole run's (all its endpoints): the endpoint page's delay chart without
        # a conversion_time_param. Null whenever delay_seconds is.
        "delay_buckets": buckets,
    }
