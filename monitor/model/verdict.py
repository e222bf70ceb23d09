"""What judging a hit produces: flags and the verdict that carries them.

Plain data shared by the rules that make them, the capture steps that add their
own flags (body_truncated), the writer that settles duplicates and the spool that
stores them; it imports nothing of ours so every layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# A flag as stored on a hit: {"flag", "param", "value", "message", ...details}.
Flag = dict[str, Any]

# A test or ping postback (rules.test_traffic): stored and shown, but left out of
# the duplicate ledger, stats, alert metrics and reconciliation.
TEST_TRAFFIC = "test_traffic"

# Every flag name a hit can carry: the rules' (judge, params), capture's own
# (body_truncated) and the writer's (duplicate_click_id and the lifecycle flags, settled
# against the database in arrival order; amount_outlier, against its process's recent
# amounts; new_sender and param_shape_changed, against the endpoint's known senders).
# docs/rules.md describes each.
FLAG_NAMES = (
    "unreplaced_macro",
    "missing_param",
    "invalid_amount",
    "negative_amount",
    "amount_outlier",
    "invalid_currency",
    "ip_not_allowed",
    "secret_mismatch",
    "duplicate_click_id",
    "orphan_reversal",
    "conversion_after_reversal",
    "status_regression",
    "new_sender",
    "param_shape_changed",
    "body_truncated",
    "params_truncated",
    TEST_TRAFFIC,
)

# Flags are stored on every hit: bound their size whatever the sender puts on the wire.
MAX_FLAG_VALUE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rules' answer for one hit: its flags, and what duplicate detection needs."""

    flags: list[Flag]
    click_id: str | None = None
    event: str | None = None
    click_id_param: str | None = None
    # (click id, event or "") when this hit takes part in duplicate detection.
    dedupe_key: tuple[str, str] | None = None
    dedupe_window_s: float | None = None
    # The hit's amount when it is a plain decimal, negative ones too (invalid: None,
    # and the hit is flagged invalid_amount), the param it was read from, and its
    # currency when an ISO 4217 code (upper case; else None). Read once here so the
    # payout metric needs no second parse, and kept as the exact decimal sent: it is
    # stored (hits.amount, numeric) and compared with a network's report by
    # reconciliation, where a float's 0.1 + 0.2 would show.
    amount: Decimal | None = None
    currency: str | None = None
    amount_param: str | None = None
    # The hit's status in the common vocabulary (rules/statuses.py), None when its
    # value is unknown or absent; the param and value it was read from, as sent.
    status: str | None = None
    status_param: str | None = None
    status_value: str | None = None
    # The hit takes part in its click's lifecycle: a click id that is no macro and a
    # status other than test. Decided here so the writer's hot path only filters.
    status_tracked: bool = False


def make_flag(name: str, param: str | None, value: str | None, message: str, **extra: Any) -> Flag:
    """A flag as stored on a hit; long values are clipped so flags stay small."""
    return {
        "flag": name,
        "param": param,
        "value": None if value is None else clip(value),
        "message": message,
        **extra,
    }


def clip(text: str) -> str:
    """The text cut to the stored size of a flag value, marked with an ellipsis."""
    if len(text) <= MAX_FLAG_VALUE_CHARS:
        return text
    return text[: MAX_FLAG_VALUE_CHARS - 1] + "…"
