"""Which column of a network's conversion report holds which field, for the known exports.

A user uploads the report as the network exported it, so the reader must find the
click id, event, amount, currency and time columns without being told. Each known
export has a few columns no other export has (its ``signature``) and, per field, the
columns that may hold it, best first; ``docs/report-formats.md`` says where each name
comes from and how sure we are of it.

Names are compared by ``header_key``: lower case with everything but letters and
digits dropped, so "Click ID", "click_id", "clickId" and "Stat.click_id" differ only
where the platforms themselves differ.

Detection is pure and looks at the header and a sample of the first rows: the export
whose signature columns are most present wins (two at least, so one shared name such
as "transaction_id" proves nothing), else the generic names. Then, per field, the
export's candidates and after them the generic ones are tried, and the first column
filled in most sampled rows is taken (else the first present): the click id candidates
follow the click id our presets (presets.toml) have each platform's postback send,
such as Everflow's transaction_id or CAKE's s2, and an export that has that column
but left it empty falls through to the next, such as CAKE's first sub id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

REPORT_FIELDS = ("click_id", "event", "amount", "currency", "time")

_NOT_KEY = re.compile(r"[\W_]+")


def header_key(name: str) -> str:
    """A column name as compared: lower case, letters and digits only ("Click ID" → "clickid")."""
    return _NOT_KEY.sub("", name.lower())


@dataclass(frozen=True, slots=True)
class ReportFormat:
    """One known export: its telling columns and, per field, candidate columns best first.

    ``day_first`` is how the export writes an ambiguous slashed date such as 01/02/2026
    (None: not known, the reader's default applies).
    """

    name: str
    signature: frozenset[str]
    candidates: dict[str, tuple[str, ...]]
    day_first: bool | None = None


def _keys(*names: str) -> tuple[str, ...]:
    return tuple(header_key(name) for name in names)


def _format(
    name: str, signature: Sequence[str], day_first: bool | None = None, **fields: Sequence[str]
) -> ReportFormat:
    return ReportFormat(
        name,
        frozenset(_keys(*signature)),
        {field: _keys(*names) for field, names in fields.items()},
        day_first,
    )


# Column names seen in the exports; sources and confidence in docs/report-formats.md.
FORMATS: tuple[ReportFormat, ...] = (
    _format(
        "appsflyer",
        [
            "AppsFlyer ID",
            "Event Revenue Currency",
            "Event Revenue USD",
            "Attributed Touch Time",
            "Install Time",
            "Media Source",
            "Sub Param 1",
            "Event Source",
        ],
        click_id=["AppsFlyer ID", "appsflyer_id"],
        event=["Event Name"],
        amount=["Event Revenue"],
        currency=["Event Revenue Currency"],
        time=["Event Time"],
    ),
    _format(
        "everflow",
        [
            "transaction_id",
            "conversion_unix_timestamp",
            "click_unix_timestamp",
            "is_event",
            "sale_amount",
            "adv1",
            "currency_id",
            "conversion_id",
            "session_user_ip",
        ],
        click_id=["transaction_id", "Transaction ID", "sub1", "Sub 1"],
        event=["event", "event_name", "Event Name"],
        amount=["payout", "revenue", "sale_amount"],
        currency=["currency_id", "currency"],
        time=["conversion_unix_timestamp", "Conversion Date", "Date", "unix_timestamp"],
    ),
    _format(
        "tune",
        [
            "Stat.datetime",
            "Stat.affiliate_info1",
            "Stat.ad_id",
            "Stat.payout",
            "ConversionsMobile.affiliate_click_id",
            "Stat.conversion_status",
            "Goal.name",
            "Stat.currency",
            "Aff Sub",
            "Affiliate Sub ID",
        ],
        click_id=[
            "Stat.affiliate_info1",
            "Aff Sub",
            "Affiliate Sub ID",
            "aff_sub",
            "ConversionsMobile.affiliate_click_id",
            "Stat.ad_id",
            "Transaction ID",
        ],
        event=["Goal.name", "Goal"],
        amount=["Stat.payout", "Payout", "Stat.revenue", "Revenue"],
        currency=["Stat.currency", "Currency"],
        time=["Stat.datetime", "Datetime", "Date"],
        day_first=False,
    ),
    _format(
        "cake",
        [
            "Conversion ID",
            "Conversion Date",
            "Sub ID",
            "Sub ID 2",
            "subid_1",
            "subid_2",
            "currency_symbol",
            "Disposition",
            "Price",
            "Request ID",
        ],
        click_id=[
            "Sub ID 2",
            "subid_2",
            "Sub ID",
            "Sub ID 1",
            "subid_1",
            "Transaction ID",
            "transaction_id",
        ],
        event=["Event", "Event Name", "Disposition"],
        amount=["Price", "Paid", "Received", "price"],
        currency=["currency_symbol", "Currency"],
        time=["Conversion Date", "conversion_date"],
        day_first=False,
    ),
    _format(
        "affise",
        [
            "Action ID",
            "action_id",
            "Conversion date",
            "Click date",
            "Time to conversion",
            "Promocode",
            "Fbclid",
            "Sub1",
            "Payouts",
            "Updated at",
        ],
        click_id=["Sub1", "Sub 1", "Click ID", "clickid"],
        event=["Goal", "goal"],
        amount=["Payouts", "Payout", "Revenue"],
        currency=["Currency"],
        time=["Conversion date", "created_at", "Date"],
    ),
    _format(
        "voluum",
        [
            "Postback timestamp",
            "Visit timestamp",
            "External ID",
            "Click ID",
            "Transaction ID",
            "Conversion type",
            "Custom conversion",
        ],
        click_id=["Click ID", "clickid", "External ID"],
        event=["Conversion type", "Custom conversion", "Event"],
        amount=["Payout", "Revenue"],
        currency=["Currency"],
        time=["Postback timestamp", "Conversion timestamp", "Visit timestamp"],
    ),
    _format(
        "keitaro",
        [
            "Subid",
            "sub_id",
            "TID",
            "Original status",
            "Postback datetime",
            "Click datetime",
            "postback_datetime",
            "click_datetime",
            "original_status",
        ],
        click_id=["Subid", "sub_id", "sub id"],
        event=["Status", "status"],
        amount=["Revenue", "Payout"],
        currency=["Currency"],
        time=["Postback datetime", "postback_datetime", "Datetime", "Click datetime"],
        day_first=True,
    ),
    _format(
        "binom",
        [
            "Click ID",
            "cnv_id",
            "cnv_status",
            "cnv_status2",
            "Status2",
            "Status 2",
            "Conversion status",
            "Conversion time",
            "Click time",
        ],
        click_id=["Click ID", "clickid", "cnv_id"],
        event=["cnv_status", "Conversion status", "Status", "Event"],
        amount=["Payout", "payout", "Revenue"],
        currency=["cnv_currency", "Currency"],
        time=["Conversion time", "Time", "Date"],
        day_first=True,
    ),
)

# The names any export might use, tried after the detected export's own.
GENERIC = _format(
    "generic",
    [],
    click_id=[
        "click_id",
        "clickid",
        "click id",
        "cid",
        "subid",
        "sub_id",
        "sub id",
        "cnv_id",
        "aff_click_id",
        "transaction_id",
        "transaction id",
        "tid",
    ],
    event=[
        "event",
        "event_name",
        "event name",
        "goal",
        "goal_name",
        "conversion_type",
        "type",
        "status",
    ],
    amount=["payout", "revenue", "amount", "sum", "sale_amount", "price", "value"],
    currency=["currency", "currency_code", "cur"],
    time=[
        "conversion_time",
        "conversion time",
        "conversion_date",
        "conversion date",
        "datetime",
        "date_time",
        "timestamp",
        "time",
        "date",
        "created_at",
        "created",
    ],
)

_MIN_SIGNATURE = 2


@dataclass(frozen=True, slots=True)
class Detected:
    """Header index per report field found, and the export they came from."""

    indexes: dict[str, int]
    format: ReportFormat


def detect(header: Sequence[str], sample: Sequence[Sequence[str]]) -> Detected | None:
    """The columns of the known export (or generic names) that fit the header; None
    when no column can be the click id."""
    keys = [header_key(name) for name in header]
    present = set(keys)
    best, best_score = None, _MIN_SIGNATURE - 1
    for known in FORMATS:
        score = len(known.signature & present)
        if score > best_score:
            best, best_score = known, score
    chosen = best or GENERIC
    indexes: dict[str, int] = {}
    for field in REPORT_FIELDS:
        names = chosen.candidates.get(field, ()) + GENERIC.candidates[field]
        index = _pick(keys, names, sample, taken=set(indexes.values()))
        if index is not None:
            indexes[field] = index
    if "click_id" not in indexes:
        return None
    return Detected(indexes, chosen)


def _pick(
    keys: Sequence[str], names: Sequence[str], sample: Sequence[Sequence[str]], taken: set[int]
) -> int | None:
    """The first candidate column filled in most sampled rows, else the first present."""
    present: list[int] = []
    for name in dict.fromkeys(names):
        if name in keys:
            index = keys.index(name)
            if index not in taken:
                present.append(index)
    for index in present:
        filled = sum(1 for row in sample if index < len(row) and row[index].strip())
        if filled * 2 > len(sample):
            return index
    return present[0] if present else None
