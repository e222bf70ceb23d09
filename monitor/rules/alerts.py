"""An endpoint's ``alerts`` settings and the decision each alert takes: pure, no I/O.

The evaluator (``notifying.evaluator``) gathers each alerting endpoint's figures with
a few set-based queries and asks ``decide`` what to do with each condition: fire,
resolve, remind or nothing. Keeping the decision here means it is tested as a table
of cases, without a clock, a database or a far end; the evaluator only writes what
was decided and sends it.

A condition with no key set is off. ``channel_ids`` may be empty: the alert history
still records what fired. Durations take the form of ``rules.durations`` (seconds or
"90s", "2m", ...), so ``silence_after_s: 120`` and ``"2m"`` mean the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.model.errors import SettingsError
from monitor.rules.durations import parse_duration

CONDITIONS = (
    "silence",
    "flagged_share",
    "duplicate_share",
    "forwards_given_up",
    "missing_postbacks",
)
ALERT_KEYS = (
    "channel_ids",
    "silence_after_s",
    "flagged_share_above",
    "duplicate_share_above",
    "window_s",
    "min_hits",
    "forwards_given_up",
    "missing_postbacks_above",
    "reminder_s",
)
MAX_DURATION_S = 3650 * 86400.0
MIN_REMINDER_S = 60.0
DEFAULT_WINDOW_S = 3600.0
DEFAULT_MIN_HITS = 10
MAX_CHANNELS = 50


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The checked ``alerts`` object; a threshold of None turns its condition off."""

    channel_ids: tuple[int, ...] = ()
    silence_after_s: float | None = None
    flagged_share_above: float | None = None
    duplicate_share_above: float | None = None
    window_s: float = DEFAULT_WINDOW_S
    min_hits: int = DEFAULT_MIN_HITS
    forwards_given_up: bool = False
    missing_postbacks_above: int | None = None
    reminder_s: float | None = None

    @property
    def conditions(self) -> tuple[str, ...]:
        """The conditions this endpoint watches, in CONDITIONS order."""
        on = {
            "silence": self.silence_after_s is not None,
            "flagged_share": self.flagged_share_above is not None,
            "duplicate_share": self.duplicate_share_above is not None,
            "forwards_given_up": self.forwards_given_up,
            "missing_postbacks": self.missing_postbacks_above is not None,
        }
        return tuple(c for c in CONDITIONS if on[c])


def _duration(name: str, value: Any, min_s: float) -> tuple[float, float | str]:
    return parse_duration(
        f"alerts.{name}", value, min_s=min_s, max_s=MAX_DURATION_S,
        below=f"at least {min_s:g} seconds", above="at most 3650d",
    )  # fmt: skip


def _share(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise SettingsError(f"alerts.{name}: a share above 0 and at most 1 (0.05 = 5%)")
    return float(value)


def _whole(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SettingsError(f"alerts.{name}: a whole number of at least {least}")
    return value


def _channel_ids(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_CHANNELS:
        raise SettingsError(f"alerts.channel_ids: a list of at most {MAX_CHANNELS} channel ids")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 2**63:
            raise SettingsError(f"alerts.channel_ids: {item!r} is not a channel id")
    return tuple(dict.fromkeys(value))


def compile_alerts(value: Any) -> tuple[AlertSettings | None, dict[str, Any] | None]:
    """The checked settings and their canonical document; (None, None) when absent.

    SettingsError names the key (``alerts.window_s: ...``), as every setting does."""
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise SettingsError("alerts: must be a JSON object")
    for key in value:
        if key not in ALERT_KEYS:
            raise SettingsError(f"alerts.{key}: unknown setting (known: {', '.join(ALERT_KEYS)})")
    doc: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    if value.get("channel_ids") is not None:
        fields["channel_ids"] = _channel_ids(value["channel_ids"])
        doc["channel_ids"] = list(fields["channel_ids"])
    for name, least in (("silence_after_s", 1.0), ("window_s", 1.0), ("reminder_s", 60.0)):
        if value.get(name) is not None:
            fields[name], doc[name] = _duration(name, value[name], least)
    for name in ("flagged_share_above", "duplicate_share_above"):
        if value.get(name) is not None:
            fields[name] = doc[name] = _share(name, value[name])
    if value.get("min_hits") is not None:
        fields["min_hits"] = doc["min_hits"] = _whole("min_hits", value["min_hits"], 1)
    if value.get("missing_postbacks_above") is not None:
        fields["missing_postbacks_above"] = doc["missing_postbacks_above"] = _whole(
            "missing_postbacks_above", value["missing_postbacks_above"], 0
        )
    given_up = value.get("forwards_given_up")
    if given_up is not None:
        if not isinstance(given_up, bool):
            raise SettingsError("alerts.forwards_given_up: true or false")
        fields["forwards_given_up"] = doc["forwards_given_up"] = given_up
    return AlertSettings(**fields), doc


@dataclass(frozen=True, slots=True)
class Figures:
    """What the evaluator measured for one endpoint (over its ``window_s``)."""

    created_at: datetime
    last_hit_at: datetime | None = None
    hits: int = 0
    flagged: int = 0
    duplicates: int = 0
    given_up: int = 0
    run_id: int | None = None  # the newest finished reconciliation run covering it
    missing: int | None = None  # that run's missing postbacks


@dataclass(frozen=True, slots=True)
class Firing:
    """An alert open in the database: the evaluator's current state for a condition."""

    id: int
    endpoint_id: int
    condition: str
    fired_at: datetime
    last_notified_at: datetime | None


@dataclass(frozen=True, slots=True)
class Check:
    """Whether a condition holds now, with the sentence that says why (or why not)."""

    breached: bool
    value: float
    threshold: float
    sentence: str


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # "fire", "resolve", "remind"
    check: Check
    sentence: str


def human(seconds: float) -> str:
    """ "45 s", "2 min", "3 h", "2 d": rounded down, for sentences."""
    s = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit}"
    return f"{int(s)} s"


def _percent(share: float) -> str:
    return f"{share * 100:.3g}%"


def check(condition: str, s: AlertSettings, f: Figures, now: datetime) -> Check:
    """Whether ``condition`` holds for figures ``f`` at ``now``."""
    window = human(s.window_s)
    if condition == "silence":
        limit = s.silence_after_s or 0.0
        since = f.last_hit_at or f.created_at
        quiet = (now - since).total_seconds()
        if f.last_hit_at is None:
            tail = f"never received one since it was created {human(quiet)} ago"
        else:
            tail = f"the last one arrived {human(quiet)} ago"
        head = f"No postbacks for {human(quiet)}" if quiet >= limit else "Postbacks arrive"
        return Check(quiet >= limit, quiet, limit, f"{head} (alert after {human(limit)}); {tail}.")
    if condition in ("flagged_share", "duplicate_share"):
        flagged = condition == "flagged_share"
        limit = (s.flagged_share_above if flagged else s.duplicate_share_above) or 0.0
        count = f.flagged if flagged else f.duplicates
        what = "flagged" if flagged else "duplicates"
        share = count / f.hits if f.hits else 0.0
        enough = f.hits >= s.min_hits
        text = (
            f"{_percent(share)} of the {f.hits} hits in the last {window} were {what} "
            f"(alert above {_percent(limit)} with at least {s.min_hits} hits)."
        )
        return Check(enough and share > limit, share, limit, text)
    if condition == "forwards_given_up":
        text = (
            f"{f.given_up} forwards were given up (failed for good) in the last {window}."
            if f.given_up
            else f"No forward was given up in the last {window}."
        )
        return Check(f.given_up > 0, float(f.given_up), 0.0, text)
    if condition == "missing_postbacks":
        limit = s.missing_postbacks_above or 0
        if f.run_id is None or f.missing is None:
            return Check(False, 0.0, float(limit), "No finished reconciliation run covers it.")
        text = (
            f"Reconciliation run {f.run_id} found {f.missing} missing postbacks "
            f"(alert above {limit})."
        )
        return Check(f.missing > limit, float(f.missing), float(limit), text)
    raise ValueError(f"unknown condition {condition!r}")


def decide(
    condition: str, s: AlertSettings, f: Figures, firing: Firing | None, now: datetime
) -> Decision | None:
    """Fire when the condition holds and nothing is open; resolve an open alert when
    it no longer holds; remind every ``reminder_s`` while it stays open; else None."""
    c = check(condition, s, f, now)
    if c.breached and firing is None:
        return Decision("fire", c, c.sentence)
    if not c.breached and firing is not None:
        return Decision("resolve", c, f"Resolved: {c.sentence}")
    if c.breached and firing is not None and s.reminder_s is not None:
        last = firing.last_notified_at or firing.fired_at
        if (now - last).total_seconds() >= s.reminder_s:
            since = human((now - firing.fired_at).total_seconds())
            return Decision("remind", c, f"Still firing (for {since}): {c.sentence}")
    return None


def stale(settings: AlertSettings | None, firing: list[Firing]) -> list[Firing]:
    """Open alerts whose condition the endpoint no longer watches: resolved quietly
    (a setting removed is a person's choice, not news for the channels)."""
    watched = set(settings.conditions) if settings is not None else set()
    return [a for a in firing if a.condition not in watched]
