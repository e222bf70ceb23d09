"""Statuses: what a platform's status or event value means, in one vocabulary.

Every platform spells a conversion's state its own way (Affise ``status=3``,
ClickBank ``transactionType=RFND``, Keitaro ``status=rejected``, Scaleo
``conv_status=trash``). The lifecycle rules (``lifecycle``) compare a click's
statuses over time, so each hit's value is first normalised here into one of
``STATUSES``; a value we do not know normalises to None and takes no part, which
is safer than guessing. docs/rules.md lists the values and where they come from.

Three layers, later ones winning: the common names below, a preset's overrides
(presets.toml) and the endpoint's own ``statuses`` setting. Values are compared
trimmed and in lower case. Pure and total: no I/O, never raises on a hit.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.model.errors import SettingsError

STATUSES = ("lead", "sale", "pending", "approved", "rejected", "reversal", "rebill", "test")

# Where a status is looked for when neither the endpoint nor its preset names a
# param: status params first, then the event-like ones, whose values are often a
# status too (Keitaro status=sale, generic event=lead). The first present value that
# normalises wins (else the first present name is reported, with no status).
STATUS_NAMES = (
    "status", "cnv_status", "conv_status", "conversion_status", "transactionType",
    "transaction_type", "event", "event_name", "event_type", "type", "et", "goal",
    "action",
)  # fmt: skip

# Generic names, and platform values distinctive enough to need no preset (ClickBank's
# transaction types). Keys are lower case; docs/rules.md cites the sources.
COMMON: dict[str, str] = {
    # conversions, first step
    **dict.fromkeys(
        ("lead", "leads", "registration", "register", "reg", "signup", "sign_up", "sign-up",
         "complete_registration", "completeregistration"), "lead"),
    # conversions, paid
    **dict.fromkeys(
        ("sale", "sales", "purchase", "deposit", "ftd", "first_deposit", "sale-rb"),
        "sale"),
    # awaiting a decision
    **dict.fromkeys(("pending", "hold", "on_hold", "onhold", "wait", "waiting"), "pending"),
    # confirmed
    **dict.fromkeys(("approved", "approve", "confirmed", "confirm", "accepted"), "approved"),
    # refused before it was paid
    **dict.fromkeys(
        ("rejected", "reject", "declined", "decline", "cancelled", "canceled", "trash",
         "invalid", "insf"), "rejected"),
    # money taken back after it was paid
    **dict.fromkeys(
        ("reversal", "reversed", "refund", "refunded", "chargeback", "charged_back", "void",
         "voided", "rfnd", "rfnd-rb", "cgbk"), "reversal"),
    # recurring charges
    **dict.fromkeys(("rebill", "recurring", "renewal", "bill"), "rebill"),
    # test traffic and pings
    **dict.fromkeys(
        ("test", "ping", "test_sale", "test_bill", "test_rfnd", "test_cgbk", "test_insf",
         "test_sale-rb"), "test"),
}  # fmt: skip

MAX_MAP_ENTRIES = 200
MAX_VALUE_CHARS = 256
STATUS_KEYS = ("param", "map")


def normalise(value: str | None, table: Mapping[str, str]) -> str | None:
    """The status a value means under ``table`` (lower-case keys), or None."""
    if not value:
        return None
    return table.get(value.strip().lower())


def find_status(
    names: Sequence[str], values: Mapping[str, str], table: Mapping[str, str]
) -> tuple[str | None, str, str | None]:
    """(param, value as sent, status) of a hit: the first of ``names`` whose value
    normalises; else the first present with a value, its status None."""
    first: tuple[str | None, str, str | None] = (None, "", None)
    for name in names:
        value = values.get(name)
        if not value:
            continue
        status = table.get(value.lower())
        if status is not None:
            return name, value, status
        if first[0] is None:
            first = (name, value, None)
    return first


def check_table(where: str, table: Any) -> dict[str, str]:
    """A value → status table, keys trimmed and lower-cased; SettingsError (or a
    preset's ValueError, through the caller) names the first bad entry."""
    if not isinstance(table, Mapping):
        raise SettingsError(f'{where}: must be an object like {{"3": "rejected"}}')
    if len(table) > MAX_MAP_ENTRIES:
        raise SettingsError(f"{where}: at most {MAX_MAP_ENTRIES} values")
    checked: dict[str, str] = {}
    for raw, status in table.items():
        value = str(raw).strip().lower()
        if not value or len(value) > MAX_VALUE_CHARS:
            raise SettingsError(f"{where}: a value must be 1 to {MAX_VALUE_CHARS} characters")
        if not isinstance(status, str) or status.strip().lower() not in STATUSES:
            close = difflib.get_close_matches(str(status).strip().lower(), STATUSES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise SettingsError(
                f"{where}.{raw}: unknown status {str(status)[:40]!r}{hint} "
                f"(known: {', '.join(STATUSES)})"
            )
        checked[value] = status.strip().lower()
    return checked


def compile_statuses(value: Any) -> tuple[str | None, dict[str, str], dict[str, Any]]:
    """The ``statuses`` setting: (param or None, value → status overrides, the
    normalised document). ``{"param"?: "name", "map"?: {"value": "status"}}``."""
    if not isinstance(value, Mapping):
        raise SettingsError('statuses: must be an object like {"param": "status", "map": {...}}')
    for key in value:
        if key not in STATUS_KEYS:
            close = difflib.get_close_matches(str(key), STATUS_KEYS, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise SettingsError(
                f"statuses.{key}: unknown setting{hint} (known: {', '.join(STATUS_KEYS)})"
            )
    document: dict[str, Any] = {}
    param = None
    if value.get("param") is not None:
        raw = value["param"]
        if not isinstance(raw, str) or not raw.strip() or len(raw.strip()) > MAX_VALUE_CHARS:
            raise SettingsError("statuses.param: must be a non-empty param name")
        param = document["param"] = raw.strip()
    table: dict[str, str] = {}
    if value.get("map") is not None:
        table = document["map"] = check_table("statuses.map", value["map"])
    return param, table, document
