"""Running reconciliations: the report file in, the run's items and summary out.

``Reconciler.start`` opens the report (a bad file or column mapping is refused there,
before a run exists), creates the run on a connection it keeps for the run's life,
and runs it as a task of this process; ``run`` is the same, awaited (the CLI).
A run reads the report in a worker thread a batch at a time (the reader is plain
Python: it must not hold the event loop), COPYs each batch into the scratch table,
stores its progress, then matches in SQL. Whatever ends it (done, an error, the
process stopping) it leaves a finished row, no scratch rows, and no report file.

The report reader is passed in (``monitor.rules.report.open_report`` in the server
and CLI), so this package depends on its interface only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import asyncpg
import structlog

from monitor.model.errors import Conflict, DomainError
from monitor.reconciling.options import RunOptions
from monitor.storage.reconciliations import ReconciliationStore, RunWriter

log = structlog.get_logger(__name__)

BATCH_ROWS = 20_000
# Runs at once in one process (more are refused with a Conflict, 409 in the API).
MAX_RUNNING = 2


class ReportLayoutLike(Protocol):
    """What a run keeps of the reader's ReportLayout."""

    @property
    def delimiter(self) -> str: ...
    @property
    def header(self) -> tuple[str, ...]: ...
    @property
    def columns(self) -> dict[str, str]: ...
    @property
    def detected_format(self) -> str | None: ...


OpenReport = Callable[..., tuple[ReportLayoutLike, Iterator[Any]]]
Progress = Callable[[int, int, int], None]  # rows read, bytes read, bytes in all


@dataclass(slots=True)
class Batch:
    """Rows read in one go: records for COPY, unparsed lines, and where the file is."""

    records: list[tuple[Any, ...]] = field(default_factory=list)
    unparsed: list[tuple[int, str, str]] = field(default_factory=list)
    bytes_read: int = 0
    last: bool = False


def read_batch(rows: Iterator[Any], source: BinaryIO, limit: int) -> Batch:
    """The next ``limit`` rows (in the worker thread). A ReportRow becomes a COPY
    record; an UnparsedRow (it has a ``reason``) a kept line."""
    batch = Batch()
    for row in rows:
        reason = getattr(row, "reason", None)
        if reason is not None:
            batch.unparsed.append((row.line, reason, row.text))
        else:
            batch.records.append(
                (row.line, row.click_id, row.event, row.amount, row.currency, row.time)
            )
        if len(batch.records) + len(batch.unparsed) >= limit:
            break
    else:
        batch.last = True
    batch.bytes_read = source.tell()
    return batch


def open_source(report: Path, keep: bool) -> tuple[BinaryIO, int]:
    """The report file opened for the run, and its size; deleted (unless ``keep``)
    if it cannot be."""
    try:
        source = open(report, "rb")  # the run closes it when it ends
        return source, os.fstat(source.fileno()).st_size
    except BaseException:
        if not keep:
            report.unlink(missing_ok=True)
        raise


def discard(source: BinaryIO, report: Path, keep: bool) -> None:
    """Close the report file and, unless ``keep``, delete it: an upload is kept only
    while its run reads it."""
    source.close()
    if not keep:
        report.unlink(missing_ok=True)


def layout_json(layout: ReportLayoutLike) -> dict[str, Any]:
    return {
        "delimiter": layout.delimiter,
        "header": list(layout.header),
        "columns": dict(layout.columns),
        "detected_format": layout.detected_format,
    }


class Reconciler:
    """The runs of this process, each a task holding one pool connection."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: ReconciliationStore,
        open_report: OpenReport,
        *,
        batch_rows: int = BATCH_ROWS,
        max_running: int = MAX_RUNNING,
    ) -> None:
        self.pool = pool
        self.store = store
        self.open_report = open_report
        self.batch_rows = batch_rows
        self.max_running = max_running
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.starting = 0

    def check_room(self) -> None:
        """Conflict when this process already runs ``max_running`` reconciliations:
        each holds a connection of the pool the API and pages share, and a core."""
        if len(self.tasks) + self.starting >= self.max_running:
            raise Conflict(
                "reconciliations_busy",
                f"{self.max_running} reconciliations are running in this server process; "
                "try again when one is done",
            )

    async def start(
        self,
        report: Path,
        options: RunOptions,
        progress: Progress | None = None,
        *,
        keep_report: bool = False,
    ) -> int:
        """Open the report and start its run; returns the run's id. An uploaded file
        is the run's from here on (deleted when it ends, or now when it cannot start);
        the CLI's, the user's own, is kept (``keep_report``)."""
        try:
            self.check_room()
        except Conflict:
            if not keep_report:
                await asyncio.to_thread(report.unlink, missing_ok=True)
            raise
        self.starting += 1
        try:
            return await self._start(report, options, progress, keep_report)
        finally:
            self.starting -= 1

    async def _start(
        self, report: Path, options: RunOptions, progress: Progress | None, keep_report: bool
    ) -> int:
        source, size = await asyncio.to_thread(open_source, report, keep_report)
        try:
            layout, rows = await asyncio.to_thread(
                self.open_report,
                source,
                columns=options.columns,
                decimal_comma=options.decimal_comma,
            )
            conn = await self.pool.acquire()
        except BaseException:
            await asyncio.to_thread(discard, source, report, keep_report)
            raise
        try:
            writer = await RunWriter.create(
                conn,
                options.endpoint_ids,
                options.since,
                options.until,
                options.as_json(),
                size,
            )
        except BaseException:
            await self.pool.release(conn)
            await asyncio.to_thread(discard, source, report, keep_report)
            raise
        work = self._run(writer, source, report, layout, rows, options, size, progress, keep_report)
        task = asyncio.create_task(work, name=f"reconciliation-{writer.run_id}")
        self.tasks[writer.run_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(writer.run_id, None))
        return writer.run_id

    async def wait(self, run_id: int, at_most_s: float | None = None) -> None:
        """Until the run of this process ends, or ``at_most_s`` passes."""
        task = self.tasks.get(run_id)
        if task is not None:
            await asyncio.wait({task}, timeout=at_most_s)

    async def run(
        self,
        report: Path,
        options: RunOptions,
        progress: Progress | None = None,
        *,
        keep_report: bool = False,
    ) -> int:
        """Start a run and wait for its end (the CLI, the benchmark)."""
        run_id = await self.start(report, options, progress, keep_report=keep_report)
        await self.wait(run_id)
        return run_id

    async def close(self) -> None:
        """Stop this process's runs; each is marked failed ("interrupted")."""
        for task in list(self.tasks.values()):
            task.cancel()
        for task in list(self.tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(
        self,
        writer: RunWriter,
        source: BinaryIO,
        report: Path,
        layout: ReportLayoutLike,
        rows: Iterator[Any],
        options: RunOptions,
        size: int,
        progress: Progress | None,
        keep_report: bool,
    ) -> None:
        log.info("reconciliation.started", run=writer.run_id, bytes=size)
        try:
            await writer.set_layout(layout_json(layout))
            rows_read, began = 0, time.perf_counter()
            while True:
                batch = await asyncio.to_thread(read_batch, rows, source, self.batch_rows)
                if batch.records:
                    await writer.add_rows(batch.records)
                await writer.add_unparsed(batch.unparsed)
                rows_read += len(batch.records) + len(batch.unparsed)
                await writer.progress(rows_read, batch.bytes_read)
                if progress is not None:
                    progress(rows_read, batch.bytes_read, size)
                if batch.last:
                    break
            read_s = time.perf_counter() - began
            since, until = await self.window(writer, options, layout)
            summary = await writer.match(
                options.endpoint_ids,
                since,
                until,
                tolerance=options.amount_tolerance,
                has_event="event" in layout.columns,
                has_time="time" in layout.columns,
            )
            await writer.finish(summary, since, until)
            log.info(
                "reconciliation.done",
                run=writer.run_id,
                read_s=round(read_s, 2),  # reading and loading the report
                match_s=round(time.perf_counter() - began - read_s, 2),
                **without_delay(summary),
            )
        except asyncio.CancelledError:
            await self._fail(writer, "interrupted")
            raise
        except DomainError as exc:
            await self._fail(writer, exc.message)
        except Exception as exc:
            log.exception("reconciliation.failed", run=writer.run_id)
            await self._fail(writer, f"{type(exc).__name__}: {exc}")
        finally:
            await asyncio.to_thread(discard, source, report, keep_report)
            with contextlib.suppress(Exception):
                await writer.close()
            await self.pool.release(writer.conn)

    async def window(
        self, writer: RunWriter, options: RunOptions, layout: ReportLayoutLike
    ) -> tuple[datetime | None, datetime | None]:
        """The window asked for; a bound not given is the report's first or last
        conversion time when it has times, else open (all time)."""
        since, until = options.since, options.until
        if "time" in layout.columns and (since is None or until is None):
            first, last = await writer.time_range()
            since = since if since is not None else first
            until = until if until is not None else last
        return since, until

    async def _fail(self, writer: RunWriter, error: str) -> None:
        with contextlib.suppress(Exception):
            await writer.fail(error)


def without_delay(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's counts, for the log line (the delays are documents, not counts)."""
    return {k: v for k, v in summary.items() if k not in ("delay_seconds", "delay_buckets")}
