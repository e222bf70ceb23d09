"""Column detection: each known export's header, the generic names, and how ties are settled."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from monitor.rules.report import ReportLayout, ReportRow, UnparsedRow, open_report
from monitor.rules.report_formats import FORMATS, GENERIC, REPORT_FIELDS, detect, header_key


def read(text: str) -> tuple[ReportLayout, list[ReportRow | UnparsedRow]]:
    layout, rows = open_report(io.BytesIO(text.encode()))
    return layout, list(rows)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# (format, header, a row, columns detected, the row read) from the exports as documented
# in docs/report-formats.md.
EXPORTS = [
    (
        "everflow",
        "conversion_id,conversion_unix_timestamp,sub1,sub2,sub3,sub4,sub5,source_id,status,"
        "payout_type,revenue_type,payout,revenue,session_user_ip,conversion_user_ip,country,"
        "is_event,event,notes,transaction_id,click_unix_timestamp,error_code,error_message,"
        "sale_amount,is_scrub,coupon_code,order_id,currency_id",
        "c0ffee,1767225600,aff-77,,,,,,approved,cpa,rpa,4.50,6.00,1.2.3.4,1.2.3.4,US,"
        "false,Purchase,,300b69de1ba44b5fb84ac4c013436511,1767220000,0,,29.99,false,,,USD",
        {"click_id": "transaction_id", "event": "event", "amount": "payout",
         "currency": "currency_id", "time": "conversion_unix_timestamp"},
        ReportRow(2, "300b69de1ba44b5fb84ac4c013436511", "Purchase", Decimal("4.50"), "USD",
                  at(2026, 1, 1)),
    ),
    (
        "appsflyer",
        "Attributed Touch Type,Attributed Touch Time,Install Time,Event Time,Event Name,"
        "Event Value,Event Revenue,Event Revenue Currency,Event Revenue USD,Event Source,"
        "Is Receipt Validated,Partner,Media Source,Channel,Campaign,Campaign ID,Sub Param 1,"
        "Country Code,AppsFlyer ID,Advertising ID,IDFA,Platform,App ID,Original URL",
        'click,2026-01-01 10:00:00,2026-01-01 10:05:00,2026-01-02 08:00:00.123,af_purchase,'
        '"{""af_revenue"":""9.99""}",9.99,EUR,10.80,SDK,,,network_int,,camp,123,s1,DE,'
        "1767225600000-1234567,,,android,com.example,https://app.appsflyer.com/x?clickid=k1",
        {"click_id": "AppsFlyer ID", "event": "Event Name", "amount": "Event Revenue",
         "currency": "Event Revenue Currency", "time": "Event Time"},
        ReportRow(2, "1767225600000-1234567", "af_purchase", Decimal("9.99"), "EUR",
                  at(2026, 1, 2, 8, 0, 0, 123000)),
    ),
    (
        "tune",
        "Stat.datetime,Offer.name,Stat.affiliate_info1,Stat.ad_id,Goal.name,Stat.payout,"
        "Stat.currency,Stat.conversion_status",
        "2026-01-15 12:00:00,Offer A,aff-click-1,102a5e7f1b2c,Default,2.00,USD,approved",
        {"click_id": "Stat.affiliate_info1", "event": "Goal.name", "amount": "Stat.payout",
         "currency": "Stat.currency", "time": "Stat.datetime"},
        ReportRow(2, "aff-click-1", "Default", Decimal("2.00"), "USD", at(2026, 1, 15, 12)),
    ),
    (
        "cake",
        "Conversion ID,Conversion Date,Offer ID,Offer Name,Campaign ID,Sub ID,Sub ID 2,"
        "Sub ID 3,Sub ID 4,Sub ID 5,Price,Disposition,Transaction ID",
        "9001,1/15/2026 3:45:12 PM,12,Offer,34,pub7,trk-click-9,,,,$1.50,Approved,ord-1",
        {"click_id": "Sub ID 2", "event": "Disposition", "amount": "Price",
         "time": "Conversion Date"},
        ReportRow(2, "trk-click-9", "Approved", Decimal("1.50"), None, at(2026, 1, 15, 15, 45, 12)),
    ),
    (
        "affise",
        "Click ID,Conversion ID,User ID,Click date,Conversion date,Time to conversion,"
        "Updated at,Promocode,Fbclid,Comment,Offer,Affiliate,Goal,Status,Payouts,Revenue,"
        "Currency,Sub1,Sub2",
        "65a1b2c3d4e5f6a7b8c9d0e1,act-1,,2026-01-01 09:00:00,2026-01-01 10:00:00,1h,"
        "2026-01-01 10:00:00,,,,Offer (1),Aff (2),1,approved,3.00,5.00,USD,my-click-5,",
        {"click_id": "Sub1", "event": "Goal", "amount": "Payouts", "currency": "Currency",
         "time": "Conversion date"},
        ReportRow(2, "my-click-5", "1", Decimal("3.00"), "USD", at(2026, 1, 1, 10)),
    ),
    (
        "voluum",
        "Postback timestamp,Visit timestamp,External ID,Click ID,Transaction ID,"
        "Conversion type,Payout,Currency,Campaign,Offer,Country,IP",
        "2026-01-18 09:37:46,2026-01-16 11:14:58,ext-1,"
        "VNV0LUUMCL1CK1D00000000000000001,tx-1,deposit,25.00,USD,Camp,Offer,PL,1.2.3.4",
        {"click_id": "Click ID", "event": "Conversion type", "amount": "Payout",
         "currency": "Currency", "time": "Postback timestamp"},
        ReportRow(2, "VNV0LUUMCL1CK1D00000000000000001", "deposit", Decimal("25.00"), "USD",
                  at(2026, 1, 18, 9, 37, 46)),
    ),
    (
        "keitaro",
        "Subid;TID;Status;Original status;Revenue;Currency;Postback datetime;Click datetime;"
        "Campaign;Offer",
        "1dad2cg1br22spja1;t-1;sale;approved;12,00;usd;02.01.2026 03:04:05;"
        "01.01.2026 00:00:00;Camp;Offer",
        {"click_id": "Subid", "event": "Status", "amount": "Revenue", "currency": "Currency",
         "time": "Postback datetime"},
        None,  # a decimal comma: read below with decimal_comma
    ),
    (
        "binom",
        "Click ID,Conversion time,Click time,Campaign,Offer,Payout,Currency,Status,Status 2",
        "81e60haa86o0b7,01/02/2026 10:00:00,01/02/2026 09:00:00,Camp,Offer,5,USD,Hold,",
        {"click_id": "Click ID", "event": "Status", "amount": "Payout", "currency": "Currency",
         "time": "Conversion time"},
        ReportRow(2, "81e60haa86o0b7", "Hold", Decimal(5), "USD", at(2026, 2, 1, 10)),
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "header", "row", "columns", "expected"), EXPORTS, ids=[e[0] for e in EXPORTS]
)
def test_known_exports_are_detected(
    name: str, header: str, row: str, columns: dict[str, str], expected: ReportRow | None
) -> None:
    layout, rows = read(f"{header}\n{row}\n")
    assert layout.detected_format == name
    assert layout.columns == columns
    if expected is not None:
        assert rows == [expected]


def test_keitaro_reads_day_first_with_a_decimal_comma() -> None:
    _, header, row, _, _ = EXPORTS[6]
    _, rows = open_report(io.BytesIO(f"{header}\n{row}\n".encode()), decimal_comma=True)
    assert list(rows) == [
        ReportRow(2, "1dad2cg1br22spja1", "sale", Decimal("12.00"), "USD", at(2026, 1, 2, 3, 4, 5))
    ]


def test_an_empty_preferred_column_gives_way_to_a_filled_one() -> None:
    header = "Conversion ID,Conversion Date,Sub ID,Sub ID 2,Price"
    rows = "\n".join(f"{i},1/15/2026 3:45 PM,pub-{i},,1.00" for i in range(5))
    layout, read_rows = read(f"{header}\n{rows}\n")
    assert layout.detected_format == "cake"
    assert layout.columns["click_id"] == "Sub ID"
    assert [row.click_id for row in read_rows if isinstance(row, ReportRow)][:2] == [
        "pub-0",
        "pub-1",
    ]


def test_one_shared_column_does_not_make_an_export() -> None:
    layout, _ = read("transaction_id,payout,currency\nt1,1,USD\n")
    assert layout.detected_format == "generic"
    assert layout.columns == {
        "click_id": "transaction_id",
        "amount": "payout",
        "currency": "currency",
    }


@pytest.mark.parametrize(
    ("header", "click_column"),
    [("ClickID", "ClickID"), ("cid", "cid"), ("Sub ID", "Sub ID"), ("sub_id", "sub_id"),
     ("subid", "subid"), ("Transaction ID", "Transaction ID")],
)  # fmt: skip
def test_generic_click_id_names(header: str, click_column: str) -> None:
    layout, _ = read(f"{header},Revenue,Goal,Conversion Time\nx,1,reg,2026-01-01\n")
    assert layout.columns == {
        "click_id": click_column, "event": "Goal", "amount": "Revenue", "time": "Conversion Time",
    }  # fmt: skip


def test_a_column_is_used_for_one_field_only() -> None:
    found = detect(["click_id", "sum"], [["c", "1"]])
    assert found is not None
    assert found.indexes == {"click_id": 0, "amount": 1}


def test_detect_gives_none_without_a_click_id_column() -> None:
    assert detect(["Offer", "Revenue"], [["o", "1"]]) is None


@pytest.mark.parametrize(
    ("name", "key"),
    [("Click ID", "clickid"), ("click_id", "clickid"), (" Stat.ad_id ", "statadid"),
     ("Event Revenue USD", "eventrevenueusd")],
)  # fmt: skip
def test_header_key_ignores_case_spaces_and_punctuation(name: str, key: str) -> None:
    assert header_key(name) == key


def test_every_format_names_candidates_for_known_fields_only() -> None:
    for known in (*FORMATS, GENERIC):
        assert set(known.candidates) <= set(REPORT_FIELDS), known.name
        assert known.candidates["click_id"], known.name


def test_header_key_keeps_letters_of_any_script() -> None:
    assert header_key("Дата конверсии") == "датаконверсии"
    assert header_key("Дата конверсии") != header_key("Дата клика")
