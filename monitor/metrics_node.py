"""The ``node`` label on every series a server process exposes.

Several machines (nodes) capture into one database, and Prometheus scrapes each;
the ``instance`` label names a scrape address, which changes with the network, a
proxy or a container's port. ``node`` names the machine as its operator does
(``--node-name``, the host name by default), so a panel or a query can tell which
node took which hits, and a node that moves keeps its series.

prometheus-client has no registry-wide constant labels, so the label is added
when the exposition is made: ``NodeLabelled`` wraps whatever ``generate_latest``
would read (the process's registry, or the multiprocess collector's sum of every
worker's files, which all belong to one node) and hands out copies of its families
with ``node`` on each sample; the collectors' own objects are left as they are.
Dashboards and alert rules aggregate by ``endpoint`` or
``instance``, which drops the label: they read one node or many alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

NODE_LABEL = "node"


class NodeLabelled(Collector):
    """``inner``'s families with ``node="<node>"`` on every sample."""

    def __init__(self, inner: Collector, node: str) -> None:
        self.inner = inner
        self.node = node

    def collect(self) -> Iterable[Metric]:
        for family in self.inner.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [
                sample._replace(labels={**sample.labels, NODE_LABEL: self.node})
                for sample in family.samples
            ]
            yield labelled
