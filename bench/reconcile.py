"""Reconciliation benchmark: a network report of N rows against M stored hits, in one run.

    python bench/reconcile.py [--report-rows 1000000] [--hits 10000000] [--json out.json]

Makes a fresh database on DATABASE_URL's server (default: this machine's PostgreSQL,
postgresql://postgres@127.0.0.1:5432/postgres; it is created and dropped here),
fills ``hits`` with set-based SQL (generate_series straight into the table: this
measures reconciliation, not capture), N hits for each of M / N endpoints over ten
days, and writes a report CSV for endpoint 1 with known discrepancies: one in a thousand of
its hits is left out (unexpected), one has another amount, one another currency, one
is captured twice (duplicate), and a thousand report rows were never captured
(missing). The reconciliation runs through ``Reconciler`` with the real report
reader, as the API runs it; the counts must come out exactly. Printed: the time,
rows/s, and the ratio to a plain COPY of the same file into a table measured in the
same run (the floor of any approach that loads the report): compare ratios, not
raw numbers, on shared machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.reconciling.options import RunOptions  # noqa: E402
from monitor.reconciling.runner import Reconciler  # noqa: E402
from monitor.rules.report import open_report  # noqa: E402
from monitor.storage.db import connect, create_pool  # noqa: E402
from monitor.storage.migrate import migrate  # noqa: E402
from monitor.storage.partitions import create_statement  # noqa: E402
from monitor.storage.reconciliations import ReconciliationStore  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DAYS = 10
EVERY = 1000  # one discrepancy of each kind per this many hits of endpoint 1
MISSING = 1000
START = datetime(2026, 1, 1, tzinfo=UTC)
# Hits i of endpoint e: click "c<i>", received START + i * step; endpoint 1's hits with
# i % EVERY == 0 are not in the report, == 1 differ in amount, == 2 in currency, and
# == 3 are captured a second time a minute later (flagged duplicate_click_id).
INSERT_HITS = """
INSERT INTO hits (id, endpoint_id, received_at, method, path, raw_query, params, headers,
    body, body_size, click_id, event, flags, flagged, amount, currency)
SELECT md5(e || ':' || i)::uuid, e, $1::timestamptz + i * $2::interval, 'GET', '/p/bench',
    ''::bytea, '[]'::jsonb, '[]'::jsonb, ''::bytea, 0, 'c' || i, 'sale', '[]'::jsonb, false,
    (i % 100) + 0.5, 'USD'
FROM generate_series(1, $3::bigint) AS i, generate_series(1, $4::int) AS e
"""
INSERT_DUPLICATES = """
INSERT INTO hits (id, endpoint_id, received_at, method, path, raw_query, params, headers,
    body, body_size, click_id, event, flags, flagged, amount, currency)
SELECT md5('dup:' || i)::uuid, 1, $1::timestamptz + i * $2::interval + interval '1 minute',
    'GET', '/p/bench', ''::bytea, '[]'::jsonb, '[]'::jsonb, ''::bytea, 0, 'c' || i, 'sale',
    '[{"flag": "duplicate_click_id"}]'::jsonb, true, (i % 100) + 0.5, 'USD'
FROM generate_series(1, $3::bigint) AS i WHERE i % $4 = 3
"""


def write_report(path: Path, per_endpoint: int, step: timedelta) -> int:
    """The report CSV; returns its row count."""
    rows = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("click_id,event,amount,currency,time\n")
        for i in range(1, per_endpoint + 1):
            kind = i % EVERY
            if kind == 0:
                continue
            amount = Decimal(i % 100) + Decimal("0.5") + (5 if kind == 1 else 0)
            currency = "EUR" if kind == 2 else "USD"
            when = START + i * step - timedelta(seconds=30)
            f.write(f"c{i},sale,{amount},{currency},{when:%Y-%m-%dT%H:%M:%SZ}\n")
            rows += 1
        for j in range(1, MISSING + 1):
            f.write(f"m{j},sale,1.00,USD,{START + j * step:%Y-%m-%dT%H:%M:%SZ}\n")
            rows += 1
    return rows


async def load_hits(url: str, per_endpoint: int, endpoints: int) -> timedelta:
    """Partitions for the days, then the hits; returns the time between two hits."""
    step = timedelta(days=DAYS) / per_endpoint
    conn = await connect(url)
    try:
        await migrate(conn)
        for d in range(-1, DAYS + 2):
            await conn.execute(create_statement((START + timedelta(days=d)).date()))
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute(INSERT_HITS, START, step, per_endpoint, endpoints)
        await conn.execute(INSERT_DUPLICATES, START, step, per_endpoint, EVERY)
        await conn.execute("INSERT INTO endpoints (token, name) "
                           "SELECT 'bench' || e, 'bench' FROM generate_series(1, $1) e",
                           endpoints)  # fmt: skip
        await conn.execute("VACUUM ANALYZE hits")
    finally:
        await conn.close()
    return step


async def copy_baseline(url: str, report: Path) -> float:
    """Seconds to COPY the report file as is into a table of text columns."""
    conn = await connect(url)
    try:
        await conn.execute(
            "CREATE UNLOGGED TABLE copy_baseline (click_id text, event text, amount text, "
            "currency text, time text)"
        )
        began = time.perf_counter()
        await conn.copy_to_table("copy_baseline", source=report, format="csv", header=True)
        took = time.perf_counter() - began
        await conn.execute("DROP TABLE copy_baseline")
        return took
    finally:
        await conn.close()


async def reconcile(url: str, report: Path, since: datetime, until: datetime) -> tuple[float, Any]:
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        store = ReconciliationStore(pool)
        reconciler = Reconciler(pool, store, open_report)
        began = time.perf_counter()
        run_id = await reconciler.run(
            report, RunOptions([1], since=since, until=until), keep_report=True
        )
        took = time.perf_counter() - began
        return took, await store.get(run_id)
    finally:
        await pool.close()


def expected(per_endpoint: int, report_rows: int) -> dict[str, int]:
    each = per_endpoint // EVERY
    return {
        "report_rows": report_rows,
        "matched": report_rows - MISSING,
        "missing_postbacks": MISSING,
        "unexpected_postbacks": each,
        "amount_mismatches": each,
        "currency_mismatches": each,
        "duplicate_postbacks": each,
        "unparsed_rows": 0,
        "repeated_report_rows": 0,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    admin_url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    name = f"pbm_bench_reconcile_{os.getpid()}"
    admin = await connect(admin_url)
    await admin.execute(f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory(prefix="pbm-bench-reconcile-") as tmp:
            per_endpoint, endpoints = args.report_rows, max(1, args.hits // args.report_rows)
            began = time.perf_counter()
            step = await load_hits(url, per_endpoint, endpoints)
            loaded_s = time.perf_counter() - began
            print(f"{per_endpoint * endpoints:,} hits loaded in {loaded_s:.1f} s")
            report = Path(tmp) / "report.csv"
            rows = write_report(report, per_endpoint, step)
            size = report.stat().st_size
            copy_s = await copy_baseline(url, report)
            since, until = START, START + timedelta(days=DAYS + 1)
            took, run = await reconcile(url, report, since, until)
            summary = dict(run["summary"])
            delay = summary.pop("delay_seconds")
            summary.pop("delay_buckets", None)
            want = expected(per_endpoint, rows)
            ok = run["status"] == "done" and summary == want
            result = {
                "report_rows": rows, "report_bytes": size, "hits": per_endpoint * endpoints,
                "seconds": round(took, 2), "rows_per_s": round(rows / took),
                "copy_seconds": round(copy_s, 2), "ratio_to_copy": round(took / copy_s, 1),
                "counts_ok": ok, "delay_seconds": delay,
            }  # fmt: skip
            print(f"report: {rows:,} rows, {size / 1e6:.0f} MB; hits: {per_endpoint * endpoints:,}")
            print(f"reconciliation: {took:.1f} s, {rows / took:,.0f} rows/s ({run['status']})")
            print(f"plain COPY of the file: {copy_s:.1f} s; reconciliation / COPY = "
                  f"{took / copy_s:.1f}x")  # fmt: skip
            print(f"counts {'exact' if ok else 'WRONG'}: {summary}")
            if not ok:
                print(f"expected: {want}; run: {run}")
            return result
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--report-rows", type=int, default=1_000_000)
    parser.add_argument("--hits", type=int, default=10_000_000)
    parser.add_argument("--json", help="write the result here as JSON")
    args = parser.parse_args()
    if args.report_rows < EVERY or args.report_rows % EVERY:
        parser.error(f"--report-rows: a multiple of {EVERY}")
    result = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["counts_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
