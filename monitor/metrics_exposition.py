"""What a scrape shows: the ``node`` label on every series, and in multiprocess mode
every worker's files summed.

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

In multiprocess mode reading every worker's files is I/O, so ``/metrics`` does it in
a thread. The series that describe tables (endpoints, reconciliations) come from
this process's endpoint cache, which the event loop changes (a rename, a delete):
they are collected on the loop first and handed in as ``Families``, so the thread
reads nothing the loop changes.

prometheus-client creates a worker's value file and only then sizes it
(client_python#1199): a scrape between the two read a 0-byte file and failed
with a 500 (once in CI, just as a worker touched its first value of a kind). Such
a file holds no value yet, so ``multiprocess_exposition`` leaves it out.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

import prometheus_client
from prometheus_client import multiprocess as prom_multiprocess
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


class Families(Collector):
    """Families collected earlier (on the event loop), handed out as they are."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def multiprocess_exposition(directory: str, node: str, table_series: list[Metric]) -> bytes:
    """The text format: the files in ``directory`` summed, and ``table_series`` once,
    every sample labelled with ``node``. Reads only files, so it may run in a thread."""
    summed = prom_multiprocess.MultiProcessCollector.merge(value_files(directory))  # type: ignore[no-untyped-call]
    families = Families([*summed, *table_series])
    return prometheus_client.generate_latest(NodeLabelled(families, node))  # type: ignore[arg-type]


def value_files(directory: str) -> list[str]:
    """The workers' value files that hold something: not one still at 0 bytes, made
    and not yet sized (or left so by a worker killed between the two steps)."""
    files = []
    for path in glob.glob(os.path.join(directory, "*.db")):
        try:
            if os.path.getsize(path) > 0:
                files.append(path)
        except FileNotFoundError:  # a live gauge's file, removed for a dead worker
            continue
    return files
