"""The latest reconciliation of each endpoint, as gauges: what the missing-postbacks
alert reads.

A run is a fact about the database (a report matched against the hits), not about
the process that ran it, so the series are read at scrape from a snapshot of the
``reconciliations`` table that every process refreshes (``metrics_route``), like the
endpoint series: with ``serve --workers N`` the worker answering the scrape reports
them once, and a deleted run's series simply stop.

A run may span several endpoints; its counts are the run's, repeated under each of
its endpoints with the run's id in ``reconciliation``, so ``max by (reconciliation,
kind)`` counts a run once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The run summary's count key for each item kind (the ``kind`` label).
SUMMARY_KEYS = {
    "missing_postback": "missing_postbacks",
    "unexpected_postback": "unexpected_postbacks",
    "amount_mismatch": "amount_mismatches",
    "currency_mismatch": "currency_mismatches",
    "duplicate_postback": "duplicate_postbacks",
    "unparsed_row": "unparsed_rows",
}


@dataclass(frozen=True, slots=True)
class LatestRun:
    """An endpoint's newest finished reconciliation."""

    endpoint_id: int
    run_id: int
    finished_s: float  # Unix time
    summary: Mapping[str, object]


RunSource = Callable[[], Iterable[LatestRun]]


def no_runs() -> Iterable[LatestRun]:
    return ()


class ReconciliationCollector(Collector):
    """The reconciliation series of whatever ``source`` returns at each scrape."""

    def __init__(self, source: RunSource = no_runs) -> None:
        # Set by the app once its snapshot exists (after this is registered).
        self.source = source

    def describe(self) -> Iterable[Metric]:
        return list(_families())

    def collect(self) -> Iterable[Metric]:
        items, rows, matched, finished = _families()
        for run in self.source():
            labels = [str(run.endpoint_id), str(run.run_id)]
            for kind, key in SUMMARY_KEYS.items():
                items.add_metric([*labels, kind], _count(run.summary, key))
            rows.add_metric(labels, _count(run.summary, "report_rows"))
            matched.add_metric(labels, _count(run.summary, "matched"))
            finished.add_metric(labels, run.finished_s)
        return [items, rows, matched, finished]


def _count(summary: Mapping[str, object], key: str) -> float:
    value = summary.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def _families() -> tuple[GaugeMetricFamily, ...]:
    labels = ["endpoint", "reconciliation"]
    return (
        GaugeMetricFamily(
            "postback_monitor_reconciliation_items",
            "Discrepancies the endpoint's latest finished reconciliation found, by kind "
            "(the run's counts; a run over several endpoints repeats them under each).",
            labels=[*labels, "kind"],
        ),
        GaugeMetricFamily(
            "postback_monitor_reconciliation_report_rows",
            "Rows of the report the endpoint's latest finished reconciliation read.",
            labels=labels,
        ),
        GaugeMetricFamily(
            "postback_monitor_reconciliation_matched",
            "Report rows whose click id was captured, in that reconciliation.",
            labels=labels,
        ),
        GaugeMetricFamily(
            "postback_monitor_reconciliation_finished_timestamp_seconds",
            "When the endpoint's latest finished reconciliation ended.",
            labels=labels,
        ),
    )
