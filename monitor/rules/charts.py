"""What the charts count, pure: the ranges and their buckets, and the delay from a
conversion to its postback in buckets a person reads at a glance.

The storage module (``storage/charts.py``) asks the database for counts per bucket;
everything here is arithmetic on times and values, so it is tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.rules.report_values import BadValue, parse_time


@dataclass(frozen=True, slots=True)
class ChartRange:
    """A range a chart shows: ``buckets`` buckets of ``bucket`` each, the last of
    them the one now falls in (so the newest bar is still filling)."""

    key: str
    bucket: timedelta
    buckets: int

    def starts(self, now: datetime) -> list[datetime]:
        """Each bucket's start (UTC, aligned to the bucket size), oldest first."""
        last = floor_time(now, self.bucket)
        return [last - self.bucket * (self.buckets - 1 - i) for i in range(self.buckets)]


RANGES = {
    "1h": ChartRange("1h", timedelta(minutes=1), 60),
    "24h": ChartRange("24h", timedelta(hours=1), 24),
    "7d": ChartRange("7d", timedelta(hours=1), 168),
}
DEFAULT_RANGE = "24h"
HOUR = timedelta(hours=1)
# An hour is counted once into the rollup only when the writer can no longer commit a
# hit received in it: a batch is committed or spooled within its commit timeout
# (10 s by default), and a spooled one, replayed later, deletes the hours it fills.
CLOSED_AFTER = timedelta(minutes=2)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_time(when: datetime, step: timedelta) -> datetime:
    """``when`` rounded down to a multiple of ``step`` since the Unix epoch, in UTC."""
    return _EPOCH + step * ((when.astimezone(UTC) - _EPOCH) // step)


def open_from(now: datetime) -> datetime:
    """The start of the oldest hour the rollup must not hold yet: hours before it are
    closed (``CLOSED_AFTER``), it and later ones are counted from hits on each read."""
    return floor_time(now - CLOSED_AFTER, HOUR)


# Delay from conversion to postback: (label, upper bound in seconds; None = open).
DELAY_BUCKETS: tuple[tuple[str, float | None], ...] = (
    ("< 1 min", 60),
    ("1–5 min", 5 * 60),
    ("5–15 min", 15 * 60),
    ("15–60 min", 3600),
    ("1–6 h", 6 * 3600),
    ("6–24 h", 86400),
    ("1–7 d", 7 * 86400),
    ("> 7 d", None),
)


# DELAY_BUCKETS' finite upper bounds, ascending: in SQL, width_bucket(seconds,
# DELAY_BOUNDS_S) is delay_bucket(seconds) (under the first bound, a negative delay
# too, is 0; a delay at a bound is in the bucket above it; past the last, the last).
DELAY_BOUNDS_S: tuple[float, ...] = tuple(float(u) for _, u in DELAY_BUCKETS if u is not None)


def delay_bucket(seconds: float) -> int:
    """The index in DELAY_BUCKETS of a delay (a negative one, a clock ahead of ours by
    less than a minute or a mistake, counts as under a minute)."""
    for i, (_, upper) in enumerate(DELAY_BUCKETS):
        if upper is None or seconds < upper:
            return i
    return len(DELAY_BUCKETS) - 1


def conversion_time(value: str) -> datetime | None:
    """A conversion-time parameter's value as an aware UTC time: Unix seconds or
    milliseconds, or an ISO 8601 or ``YYYY-MM-DD HH:MM:SS`` time (UTC without a zone),
    as the reconciliation reader takes them; None when it is none of these (an
    unreplaced macro, say)."""
    text = value.strip()
    if not text or len(text) > 64:
        return None
    try:
        return parse_time(text, day_first=False)
    except (BadValue, ValueError, OverflowError):
        return None


def delay_histogram(pairs: list[tuple[datetime, str | None]]) -> tuple[list[int], int]:
    """Counts per DELAY_BUCKETS of (received at, conversion time value) pairs, and how
    many carried a value that is not a time. Pairs without the parameter are skipped."""
    counts = [0] * len(DELAY_BUCKETS)
    unreadable = 0
    for received_at, raw in pairs:
        if raw is None:
            continue
        converted = conversion_time(raw)
        if converted is None:
            unreadable += 1
            continue
        counts[delay_bucket((received_at - converted).total_seconds())] += 1
    return counts, unreadable


def delay_buckets_json(counts: list[int]) -> list[dict[str, object]]:
    """Counts per DELAY_BUCKETS as the charts API and a reconciliation's summary show
    them: ``[{"label", "below_seconds", "count"}]``."""
    return [
        {"label": label, "below_seconds": upper, "count": n}
        for (label, upper), n in zip(DELAY_BUCKETS, counts, strict=True)
    ]
