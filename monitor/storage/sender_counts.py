"""What the senders step counts in a batch and what a process knows for good.

Plain data for ``storage.senders``: each batch's networks and shapes aggregated
(``Seen``), what the database settled for good about an endpoint's senders
(``Known``: learning over, networks that never flag, shapes stored) and what one
batch settled, remembered once it has committed (``Learned``), with the counts of
its known hits that ``Senders.flush`` writes later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.model.hit import Hit
from monitor.model.verdict import clip

Key = tuple[int, str]


@dataclass(slots=True)
class Seen:
    """One network or shape of one endpoint in a batch, aggregated."""

    first: datetime
    last: datetime
    hits: int = 0
    extra: str | None = None  # the network's newest user agent, or the shape's names (JSON)


@dataclass(slots=True)
class Known:
    """What the database has settled for good about one endpoint's senders."""

    learning_over: bool = False
    networks: set[str] = field(default_factory=set)  # never flagged: learned or accepted
    shapes: set[str] = field(default_factory=set)  # stored


@dataclass(slots=True)
class Learned:
    """What one batch settled, remembered once it has committed."""

    over: dict[int, bool] = field(default_factory=dict)
    networks: set[Key] = field(default_factory=set)
    shapes: set[Key] = field(default_factory=set)
    counted_networks: dict[Key, Seen] = field(default_factory=dict)
    counted_shapes: dict[Key, Seen] = field(default_factory=dict)


def count_known_hit(learned: Learned, hit: Hit, network: str | None, digest: str) -> None:
    """Count a known hit for flush."""
    if network is not None:
        seen = add_hit(learned.counted_networks, (hit.endpoint_id, network), hit.received_at)
        if hit.user_agent:
            seen.extra = clip(hit.user_agent)
    add_hit(learned.counted_shapes, (hit.endpoint_id, digest), hit.received_at)


def merge_counts(into: dict[Key, Seen], counted: dict[Key, Seen]) -> None:
    """Add ``counted`` to ``into``, key by key."""
    for key, seen in counted.items():
        entry = into.get(key)
        if entry is None:
            into[key] = seen
            continue
        entry.first, entry.last = min(entry.first, seen.first), max(entry.last, seen.last)
        entry.hits += seen.hits
        entry.extra = seen.extra or entry.extra


def add_hit(seen: dict[Key, Seen], key: Key, at: datetime) -> Seen:
    """Count one hit at ``at`` under ``key``; its entry, for the caller to add to."""
    entry = seen.get(key)
    if entry is None:
        entry = seen[key] = Seen(at, at)
    entry.first, entry.last = min(entry.first, at), max(entry.last, at)
    entry.hits += 1
    return entry
