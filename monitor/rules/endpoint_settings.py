"""An endpoint's settings document: rule keys are compiled by ``rules``; the
operational keys (rate limit, retention, ...) are checked here.

One document per endpoint keeps the API simple (``"settings": {...}``); one
compiler keeps typos from passing silently: an unknown key is an error that names it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.rules import SETTINGS_KEYS as RULE_KEYS
from monitor.rules import Rules, SettingsError, compile_settings
from monitor.rules.forwards import FORWARD_KEYS, ForwardSettings, compile_forward

MAX_RATE_LIMIT_PER_S = 1_000_000.0
MAX_RETENTION_DAYS = 3650

OPERATIONAL_KEYS = ("rate_limit_per_s", "retention_days")


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """The validated document and what the service needs from it."""

    document: dict[str, Any]
    rules: Rules
    # Hits per second this endpoint accepts before answering 429; None = unlimited.
    rate_limit_per_s: float | None = None
    # Hits older than this are deleted; None = the server-wide retention.
    retention_days: int | None = None
    # Where hits are relayed (monitor.rules.forwards); None = not forwarded.
    forward: ForwardSettings | None = None


def compile_endpoint_settings(document: Any) -> EndpointSettings:
    """Validate a whole settings document; SettingsError names the bad setting."""
    if not isinstance(document, Mapping):
        raise SettingsError("settings: must be a JSON object")
    known = (*RULE_KEYS, *OPERATIONAL_KEYS, *FORWARD_KEYS)
    for key in document:
        if key not in known:
            raise SettingsError(f"{key}: unknown setting (known: {', '.join(known)})")
    rules = compile_settings({k: v for k, v in document.items() if k in RULE_KEYS})
    normalized = dict(rules.document)

    rate = document.get("rate_limit_per_s")
    if rate is not None:
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not math.isfinite(rate)
            or not 0 < rate <= MAX_RATE_LIMIT_PER_S
        ):
            raise SettingsError(
                f"rate_limit_per_s: a number of hits per second above 0 and at most "
                f"{MAX_RATE_LIMIT_PER_S:g}"
            )
        normalized["rate_limit_per_s"] = rate

    retention = document.get("retention_days")
    if retention is not None:
        if (
            isinstance(retention, bool)
            or not isinstance(retention, int)
            or not 1 <= retention <= MAX_RETENTION_DAYS
        ):
            raise SettingsError(
                f"retention_days: a whole number of days from 1 to {MAX_RETENTION_DAYS}"
            )
        normalized["retention_days"] = retention

    forward, forward_document = compile_forward(document)
    normalized.update(forward_document)

    return EndpointSettings(
        document=normalized,
        rules=rules,
        rate_limit_per_s=rate,
        retention_days=retention,
        forward=forward,
    )
