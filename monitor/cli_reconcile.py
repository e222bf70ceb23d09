"""``reconcile``: a network's conversion report against the captured hits, from the
command line, in this process against the database (found as the ``hits`` commands
find it).

The same run as ``POST /api/reconciliations`` (``reconciling.Reconciler`` with the
report reader), stored like the API's, so the server's pages and API show it too.
Progress goes to stderr: a bar on a terminal, a plain line a second otherwise (a
log or CI); the summary and the columns used go to stdout, the items to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from monitor.config import Config

PLAIN_EVERY_S = 1.0
BAR_WIDTH = 30
SUMMARY_ROWS = (
    ("report rows", "report_rows"),
    ("matched", "matched"),
    ("missing postbacks", "missing_postbacks"),
    ("unexpected postbacks", "unexpected_postbacks"),
    ("amount mismatches", "amount_mismatches"),
    ("currency mismatches", "currency_mismatches"),
    ("duplicate postbacks", "duplicate_postbacks"),
    ("unparsed rows", "unparsed_rows"),
    ("repeated report rows", "repeated_report_rows"),
)


def add_reconcile_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "reconcile",
        help="match a network's conversion report against the captured hits",
        description="Reads the report (CSV; separator, encoding and columns detected), "
        "matches it to the hits of the endpoints by click id (and event, when the report "
        "has one) and prints what is missing, unexpected, mismatched or duplicated.",
    )
    parser.add_argument("endpoint_ids", metavar="ENDPOINT_ID", type=int, nargs="+")
    parser.add_argument("--report", required=True, type=Path, metavar="FILE")
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=NAME",
        help="the report column of a field (click_id, event, amount, currency, time); "
        "repeatable; default: detected",
    )
    parser.add_argument("--since", metavar="TIME", help="RFC 3339; default: first conversion")
    parser.add_argument("--until", metavar="TIME", help="RFC 3339; default: last conversion")
    parser.add_argument("--amount-tolerance", default="0.01", metavar="X")
    parser.add_argument("--decimal-comma", action="store_true", help="amounts like 12,50")
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="write the items here (CSV, or NDJSON for .ndjson)"
    )
    parser.set_defaults(run=cmd_reconcile)
    return parser


def options_from(args: argparse.Namespace) -> Any:
    """The run's options, checked as the API checks its ``options`` part."""
    from monitor.model.errors import InvalidInput
    from monitor.reconciling.options import parse_options

    columns: dict[str, str] = {}
    for given in args.column:
        field, sep, name = given.partition("=")
        if not sep:
            raise InvalidInput("invalid_options", f"--column {given!r}: FIELD=NAME")
        columns[field.strip()] = name
    return parse_options(
        {
            "endpoint_ids": args.endpoint_ids,
            "columns": columns or None,
            "since": args.since,
            "until": args.until,
            "amount_tolerance": args.amount_tolerance,
            "decimal_comma": args.decimal_comma,
        }
    )


class ProgressLine:
    """Where the run is, on stderr: a redrawn bar on a terminal, else plain lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar = stream.isatty()
        self.last = 0.0

    def __call__(self, rows: int, done: int, total: int) -> None:
        share = done / total if total else 1.0
        if self.bar:
            filled = int(share * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {share:4.0%}  {rows:,} rows")
            self.stream.flush()
            return
        now = time.monotonic()
        if now - self.last >= PLAIN_EVERY_S or done >= total:
            self.last = now
            print(f"read {rows:,} rows, {done:,} of {total:,} bytes ({share:.0%})",
                  file=self.stream, flush=True)  # fmt: skip

    def end(self) -> None:
        if self.bar:
            self.stream.write("\n")
            self.stream.flush()


def print_run(run: dict[str, Any]) -> None:
    from monitor.reconciling.options import COLUMN_FIELDS

    columns = run["columns"] or {}
    mapping = ", ".join(f"{f}={columns[f]}" for f in COLUMN_FIELDS if f in columns)
    detected = f" (detected: {run['detected_format']})" if run["detected_format"] else ""
    print(f"reconciliation {run['id']}: {run['status']}")
    print(f"columns: {mapping}{detected}")
    print(f"window: {run['since'] or 'all time'} to {run['until'] or 'now'}")
    summary = run["summary"] or {}
    width = max(len(label) for label, _ in SUMMARY_ROWS)
    for label, key in SUMMARY_ROWS:
        print(f"  {label:<{width}}  {summary.get(key, 0):>12,}")
    delay = summary.get("delay_seconds")
    if delay:
        print(f"  {'delay p50/p95/max':<{width}}  {delay['p50']:.0f} / {delay['p95']:.0f} / "
              f"{delay['max']:.0f} s")  # fmt: skip


async def write_items(store: Any, run_id: int, out: Path) -> int:
    """The run's items to ``out``, a batch at a time; returns how many."""
    import asyncio

    from monitor.reconciling.items import ItemLines

    lines = ItemLines("ndjson" if out.suffix == ".ndjson" else "csv")
    count = 0
    with await asyncio.to_thread(open, out, "w", encoding="utf-8", newline="") as f:
        async for item in store.stream_items(run_id):
            lines.add(item)
            count += 1
            if (chunk := lines.take()) is not None:
                await asyncio.to_thread(f.write, chunk)
        await asyncio.to_thread(f.write, lines.take(at_least=0) or "")
    return count


async def cmd_reconcile(config: Config, args: argparse.Namespace) -> int:
    """Exit 0 when the run is done (whatever it found), 1 when it failed."""
    from monitor.cli_commands import with_stores
    from monitor.model.errors import InvalidInput
    from monitor.reconciling.runner import Reconciler
    from monitor.rules.report import open_report
    from monitor.storage.reconciliations import ReconciliationStore

    options = options_from(args)
    if not args.report.is_file():
        raise InvalidInput("invalid_report", f"--report {args.report}: no such file")

    async def work(stores: Any) -> int:
        store = ReconciliationStore(stores.pool)
        unknown = await store.unknown_endpoints(options.endpoint_ids)
        if unknown:
            raise InvalidInput("unknown_endpoints", f"no endpoint {', '.join(map(str, unknown))}")
        reconciler = Reconciler(stores.pool, store, open_report)
        progress = ProgressLine(sys.stderr)
        try:
            run_id = await reconciler.run(args.report, options, progress, keep_report=True)
        finally:
            await reconciler.close()
            progress.end()
        run = await store.get(run_id)
        if run["status"] != "done":
            print(f"postback-monitor: reconciliation {run_id} {run['status']}: {run['error']}",
                  file=sys.stderr)  # fmt: skip
            return 1
        print_run(run)
        if args.out is not None:
            count = await write_items(store, run_id, args.out)
            print(f"{count:,} item(s) written to {args.out}", file=sys.stderr)
        return 0

    return int(await with_stores(config, work))
