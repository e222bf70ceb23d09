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
from monitor.rules.alerts import AlertSettings, compile_alerts
from monitor.rules.durations import parse_duration
from monitor.rules.forwards import FORWARD_KEYS, ForwardSettings, compile_forward

MAX_RATE_LIMIT_PER_S = 1_000_000.0
MAX_RETENTION_DAYS = 3650
# How long an endpoint may go without a hit before the silence alert fires, unless
# its ``expected_interval`` setting says otherwise ("off": never).
DEFAULT_EXPECTED_INTERVAL_S = 30 * 60.0
MIN_EXPECTED_INTERVAL_S = 60.0
MAX_EXPECTED_INTERVAL_S = 3650 * 86400.0

OPERATIONAL_KEYS = (
    "rate_limit_per_s", "retention_days", "expected_interval", "alerts", "conversion_time_param",
)  # fmt: skip
MAX_PARAM_NAME_CHARS = 200


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
    # Seconds without a hit before the endpoint counts as silent; None = never
    # (the ``expected_interval`` setting "off"). Exported as a gauge the alert reads.
    expected_interval_s: float | None = DEFAULT_EXPECTED_INTERVAL_S
    # The alerts the evaluator watches (monitor.rules.alerts); None = no alerts.
    alerts: AlertSettings | None = None
    # The parameter carrying the conversion's (or click's) time, for the charts' delay
    # histogram (monitor.rules.charts); None = no delay chart.
    conversion_time_param: str | None = None


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

    expected_interval_s = _expected_interval(document.get("expected_interval"), normalized)

    alerts, alerts_document = compile_alerts(document.get("alerts"))
    if alerts_document is not None:
        normalized["alerts"] = alerts_document

    conversion = document.get("conversion_time_param")
    if conversion is not None:
        if not isinstance(conversion, str) or not conversion.strip():
            raise SettingsError("conversion_time_param: a parameter name such as conv_time")
        conversion = conversion.strip()
        if len(conversion) > MAX_PARAM_NAME_CHARS:
            raise SettingsError(
                f"conversion_time_param: longer than {MAX_PARAM_NAME_CHARS} characters"
            )
        normalized["conversion_time_param"] = conversion

    forward, forward_document = compile_forward(document)
    normalized.update(forward_document)

    return EndpointSettings(
        document=normalized,
        rules=rules,
        rate_limit_per_s=rate,
        retention_days=retention,
        forward=forward,
        expected_interval_s=expected_interval_s,
        alerts=alerts,
        conversion_time_param=conversion,
    )


def _expected_interval(value: Any, normalized: dict[str, Any]) -> float | None:
    """The silence threshold: a duration from 1m to 3650d, or "off"."""
    if value is None:
        return DEFAULT_EXPECTED_INTERVAL_S
    if isinstance(value, str) and value.strip().lower() == "off":
        normalized["expected_interval"] = "off"
        return None
    seconds, normalized["expected_interval"] = parse_duration(
        "expected_interval",
        value,
        min_s=MIN_EXPECTED_INTERVAL_S,
        max_s=MAX_EXPECTED_INTERVAL_S,
        below='at least 60 seconds ("1m"); "off" turns the silence alert off',
        above='at most 3650d; "off" turns the silence alert off',
    )
    return seconds
