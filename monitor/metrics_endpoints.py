"""The per-endpoint series that describe endpoints rather than count hits.

``postback_monitor_endpoint_info`` (id → name, preset, a link to its page), its
creation time, and its expected interval: what dashboards put in legends and what
the silence alert compares with. They are read at scrape from the endpoint cache
(``monitor.web.metrics_route`` gives the source), not kept in metric objects, for
three reasons:

- the cache already holds every endpoint, never-hit ones included, and LISTEN /
  NOTIFY keeps it current in every process, so a rename, a changed setting or a
  delete shows on the next scrape;
- a renamed or deleted endpoint's series simply stop: a labelled gauge would keep
  the old label set until restart (in multiprocess mode a removed child lives on in
  its file), and two names for one endpoint break every ``group_left (name)``;
- in multiprocess mode (``serve --workers N``) only the worker answering the scrape
  reports them, once: they describe the table, not the worker, so summing or
  keeping one series per worker would multiply them.

The endpoint name is a label here only, one series per endpoint; counters keep the
bounded ``endpoint`` id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class EndpointFacts:
    """One endpoint as its series show it."""

    id: int
    name: str
    preset: str  # "" without a preset
    url: str  # its page on the management listener
    created_s: float  # Unix time
    expected_interval_s: float | None  # None: "off", no silence alert


EndpointSource = Callable[[], Iterable[EndpointFacts]]


def no_endpoints() -> Iterable[EndpointFacts]:
    return ()


class EndpointCollector(Collector):
    """The endpoint series of whatever ``source`` returns at each scrape."""

    def __init__(self, source: EndpointSource = no_endpoints) -> None:
        # Set by the app once its endpoint cache exists (after this is registered).
        self.source = source

    def describe(self) -> Iterable[Metric]:
        return list(_families())

    def collect(self) -> Iterable[Metric]:
        info, created, interval = _families()
        for facts in self.source():
            endpoint = str(facts.id)
            info.add_metric(
                [endpoint], {"name": facts.name, "preset": facts.preset, "url": facts.url}
            )
            created.add_metric([endpoint], facts.created_s)
            if facts.expected_interval_s is not None:
                interval.add_metric([endpoint], facts.expected_interval_s)
        return [info, created, interval]


def _families() -> tuple[InfoMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    info = InfoMetricFamily(
        "postback_monitor_endpoint",
        "Each endpoint that exists, with its name, preset and the URL of its page: "
        "join on it for names (group_left); gone once the endpoint is deleted.",
        labels=["endpoint"],
    )
    created = GaugeMetricFamily(
        "postback_monitor_endpoint_created_timestamp_seconds",
        "When each endpoint was created (Unix time): the silence alert's start for an "
        "endpoint that never received a hit.",
        labels=["endpoint"],
    )
    interval = GaugeMetricFamily(
        "postback_monitor_endpoint_expected_interval_seconds",
        "Each endpoint's expected_interval setting: longest silence before "
        "PostbackEndpointSilent fires. Absent for endpoints whose setting is off.",
        labels=["endpoint"],
    )
    return info, created, interval
