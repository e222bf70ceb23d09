"""Reading a report file: encodings, separators, quoting, bad files, mapping, streaming."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from monitor.model.errors import InvalidInput
from monitor.rules.report import ReportLayout, ReportRow, UnparsedRow, open_report
from monitor.rules.report_text import HEAD_BYTES, MAX_LINE_CHARS

Rows = list[ReportRow | UnparsedRow]


def read(data: str | bytes, **options: object) -> tuple[ReportLayout, Rows]:
    raw = data.encode() if isinstance(data, str) else data
    layout, rows = open_report(io.BytesIO(raw), **options)  # type: ignore[arg-type]
    return layout, list(rows)


def refusal(data: str | bytes, **options: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        read(data, **options)
    return refused.value


SIMPLE = [
    ReportRow(2, "c1", "sale", Decimal("12.50"), "USD", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ReportRow(3, "c2", "lead", None, None, None),
]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_each_separator_reads_the_same_rows(delimiter: str) -> None:
    lines = [
        ["click_id", "event", "amount", "currency", "time"],
        ["c1", "sale", "12.50", "usd", "2026-01-02 03:04:05"],
        ["c2", "lead", "", "", ""],
    ]
    layout, rows = read("\n".join(delimiter.join(line) for line in lines) + "\n")
    assert layout.delimiter == delimiter
    assert layout.header == ("click_id", "event", "amount", "currency", "time")
    assert layout.detected_format == "generic"
    assert rows == SIMPLE


def test_bom_crlf_and_blank_lines_keep_physical_line_numbers() -> None:
    data = "\ufeffclick_id,amount\r\n\r\nc1,1\r\n\r\n\r\nc2,2\r\n,,\r\n"
    layout, rows = read(data)
    assert layout.header == ("click_id", "amount")  # no BOM left on the first name
    assert [(row.line, row.click_id) for row in rows if isinstance(row, ReportRow)] == [
        (3, "c1"),
        (6, "c2"),
    ]
    assert len(rows) == 2  # the row of empty cells is a blank line too


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_with_bom_as_excel_unicode_text(encoding: str) -> None:
    text = "Click ID\tPayout\tCurrency\r\nc1\t3.5\tEUR\r\nc\u00e9\t4\tEUR\r\n"
    raw = text.encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw
    layout, rows = read(raw)
    assert layout.delimiter == "\t"
    assert [(row.click_id, row.amount) for row in rows if isinstance(row, ReportRow)] == [
        ("c1", Decimal("3.5")),
        ("c\u00e9", Decimal("4")),
    ]


def test_quoted_fields_with_separators_quotes_and_newlines() -> None:
    data = (
        'click_id,note,amount\n'
        'c1,"a; b\tc, d",1\n'
        'c2,"two\nlines, ""quoted""",2\n'
        'c3,plain,3\n'
    )  # fmt: skip
    layout, rows = read(data)
    assert layout.delimiter == ","
    assert [(row.line, row.click_id) for row in rows if isinstance(row, ReportRow)] == [
        (2, "c1"),
        (3, "c2"),
        (5, "c3"),
    ]


def test_header_only_is_a_report_of_no_rows() -> None:
    layout, rows = read("click_id,amount\n")
    assert layout.columns == {"click_id": "click_id", "amount": "amount"}
    assert rows == []


def test_blank_lines_before_the_header_are_skipped() -> None:
    layout, rows = read("\n\nclick_id,amount\nc1,1\n")
    assert layout.header == ("click_id", "amount")
    assert [row.line for row in rows] == [4]


def test_trailing_empty_columns_are_tolerated() -> None:
    layout, rows = read("click_id,amount,,\nc1,1,,\nc2,2\n")
    assert layout.header == ("click_id", "amount")
    assert [row.click_id for row in rows if isinstance(row, ReportRow)] == ["c1", "c2"]


def test_rows_that_cannot_be_read_say_why_and_keep_their_text() -> None:
    data = (
        "click_id,event,amount,time\n"
        'c1,sale,"12,5.0",2026-01-01\n'
        ",sale,1,2026-01-01\n"
        "c3,sale\n"
        "c4,sale,1,someday\n"
        "c5,sale,1,2026-01-01\n"
    )
    _, rows = read(data)
    assert rows[:4] == [
        UnparsedRow(2, 'amount: "12,5.0" is not a number (for a decimal comma, read the '
                    "report with decimal_comma)", "c1,sale,12,5.0,2026-01-01"),
        UnparsedRow(3, "click_id: empty", ",sale,1,2026-01-01"),
        UnparsedRow(4, "row: 2 columns, fewer than the 4 the mapping needs", "c3,sale"),
        UnparsedRow(5, 'time: "someday" is not a date and time', "c4,sale,1,someday"),
    ]  # fmt: skip
    assert isinstance(rows[4], ReportRow)


def test_unparsed_text_is_cut_to_500_characters() -> None:
    _, rows = read("click_id,amount\nc1," + "9" * 300 + "x" * 900 + "\n")
    (row,) = rows
    assert isinstance(row, UnparsedRow)
    assert len(row.text) == 500


def test_decimal_comma_and_currency_beside_the_amount() -> None:
    data = 'click_id;amount;currency\nc1;"1.234,50 €";\nc2;12,50 USD;eur\nc3;-3;\n'
    _, rows = read(data, decimal_comma=True)
    assert [(row.amount, row.currency) for row in rows if isinstance(row, ReportRow)] == [
        (Decimal("1234.50"), "EUR"),
        (Decimal("12.50"), "EUR"),  # the currency column wins over the amount's suffix
        (Decimal("-3"), None),
    ]


def test_a_dollar_amount_without_currency_column_names_no_currency() -> None:
    _, rows = read("click_id,amount\nc1,$12.50\nc2,12.50 USD\n")
    assert [(row.amount, row.currency) for row in rows if isinstance(row, ReportRow)] == [
        (Decimal("12.50"), None),
        (Decimal("12.50"), "USD"),
    ]


def test_slashed_dates_follow_the_files_unambiguous_ones() -> None:
    _, rows = read("click_id,time\nc1,13/02/2026\nc2,01/02/2026\n")
    assert [row.time for row in rows if isinstance(row, ReportRow)] == [
        datetime(2026, 2, 13, tzinfo=UTC),
        datetime(2026, 2, 1, tzinfo=UTC),
    ]


def test_slashed_dates_are_month_first_without_evidence() -> None:
    _, rows = read("click_id,time\nc1,01/02/2026\n")
    assert [row.time for row in rows if isinstance(row, ReportRow)] == [
        datetime(2026, 1, 2, tzinfo=UTC)
    ]


def test_a_date_against_the_files_convention_is_unparsed() -> None:
    _, rows = read("click_id,time\nc1,13/02/2026\nc2,02/13/2026\nc3,14/02/2026\n")
    assert isinstance(rows[0], ReportRow)
    assert isinstance(rows[1], UnparsedRow) and rows[1].reason.startswith("time:")


def test_bytes_that_are_not_utf8_after_the_head_become_replacement_characters() -> None:
    head = "click_id,amount\n" + "".join(f"c{i},1\n" for i in range(HEAD_BYTES // 6))
    raw = head.encode() + b"c\xff,1\n"
    _, rows = read(raw)
    assert rows[-1] == ReportRow(rows[-1].line, "c\ufffd", None, Decimal(1), None, None)


@pytest.mark.parametrize("data", [b"", b"   \r\n\n", b"\xef\xbb\xbf", "\n\n".encode("utf-16")])
def test_empty_files_are_refused(data: bytes) -> None:
    error = refusal(data)
    assert (error.code, error.message) == ("invalid_report", "The report is empty.")


@pytest.mark.parametrize(
    "data",
    [
        b"click_id,amount\nc1,\x00\x01\x02\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "click_id;amount\nс1;1\n".encode("cp1251"),
    ],
)
def test_binary_or_non_utf_files_are_not_text_csv(data: bytes) -> None:
    error = refusal(data)
    assert error.code == "invalid_report"
    assert "not a text CSV file" in error.message


def test_an_excel_workbook_is_named() -> None:
    error = refusal(b"PK\x03\x04\x14\x00\x06\x00rest of a zip")
    assert error.code == "invalid_report"
    assert "Excel workbook" in error.message


def test_a_single_column_without_a_click_id_name_has_no_separator() -> None:
    error = refusal("everything in one column\nvalue\n")
    assert error.code == "invalid_report"
    assert "single column" in error.message


def test_a_single_click_id_column_is_a_report() -> None:
    layout, rows = read("clickid\nc1\nc2\n")
    assert layout.columns == {"click_id": "clickid"}
    assert [row.click_id for row in rows if isinstance(row, ReportRow)] == ["c1", "c2"]


def test_a_header_longer_than_the_cap_is_refused() -> None:
    error = refusal("a" * (HEAD_BYTES + 10) + "\nc1\n")
    assert error.code == "invalid_report"
    assert "first line is longer" in error.message
    error = refusal(",".join(["column"] * 20_000) + "\n")
    assert "first line is longer" in error.message


def test_more_than_a_thousand_columns_is_refused() -> None:
    error = refusal(",".join(f"c{i}" for i in range(1001)) + "\n")
    assert error.code == "invalid_report"
    assert "1001 columns" in error.message


def test_an_over_long_line_is_one_unparsed_row_and_reading_goes_on() -> None:
    data = "click_id,note\nc1,a\nc2," + "x" * (3 * MAX_LINE_CHARS) + "\nc3,b\n"
    _, rows = read(data)
    assert rows[0] == ReportRow(2, "c1", None, None, None, None)
    assert rows[1] == UnparsedRow(3, f"row: longer than {MAX_LINE_CHARS} characters", "")
    assert rows[2] == ReportRow(4, "c3", None, None, None, None)


def test_a_quote_that_never_closes_stops_at_the_field_limit() -> None:
    filler = ("y" * 1000 + "\n") * 200  # 200 KB in a quoted field, no line over the cap
    data = 'click_id,note\nc1,"' + filler + "c9,b\n"
    _, rows = read(data)
    assert isinstance(rows[0], UnparsedRow)
    assert rows[0].line == 2
    assert rows[0].reason == "row: a field runs on past 131072 characters (a quote left open?)"
    assert len(rows) < 100  # the rest is read on, not held


def test_explicit_columns_match_case_insensitively_and_trimmed() -> None:
    data = "Order,My Click,Money,When\n1,c1,5,2026-01-01\n"
    layout, rows = read(data, columns={"click_id": " my click ", "amount": "MONEY", "time": ""})
    assert layout.columns == {"click_id": "My Click", "amount": "Money"}
    assert layout.detected_format is None
    assert rows == [ReportRow(2, "c1", None, Decimal(5), None, None)]


def test_an_explicit_column_not_in_the_header_lists_the_columns() -> None:
    error = refusal("a,b,c\n1,2,3\n", columns={"click_id": "clickid"})
    assert (error.code, error.message) == (
        "invalid_columns",
        'columns.click_id: "clickid" is not a column of the report; its columns are: a, b, c',
    )


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"amount": "b"}, "columns.click_id: required"),
        ({"click_id": "a", "payout": "b"}, "'payout' is not a report field"),
    ],
)
def test_explicit_columns_refused(columns: dict[str, str], message: str) -> None:
    error = refusal("a,b\n1,2\n", columns=columns)
    assert error.code == "invalid_columns"
    assert message in error.message


def test_no_click_id_column_found_asks_for_the_mapping() -> None:
    error = refusal("Offer,Country,Clicks\nx,US,3\n")
    assert error.code == "invalid_columns"
    assert "could not tell which column holds the click id" in error.message
    assert "the columns are: Offer, Country, Clicks" in error.message
    assert error.message.endswith("pass columns.click_id")


class CountingReader(io.BytesIO):
    """A binary file that counts the bytes handed out, to prove rows are streamed."""

    handed_out = 0

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self.handed_out += len(chunk)
        return chunk

    def readinto(self, buffer: object, /) -> int:  # type: ignore[override]
        count = super().readinto(buffer)  # type: ignore[arg-type]
        self.handed_out += count
        return count

    def read1(self, size: int | None = -1, /) -> bytes:
        chunk = super().read1(size)
        self.handed_out += len(chunk)
        return chunk


def test_rows_stream_without_reading_the_whole_file() -> None:
    body = "".join(f"click-{i:08d},{i % 100}.25,USD\n" for i in range(400_000))
    source = CountingReader(("click_id,amount,currency\n" + body).encode())
    total = len(source.getvalue())
    _, rows = open_report(source)
    assert source.handed_out <= HEAD_BYTES  # only the head before the first row
    first = next(rows)
    assert first == ReportRow(2, "click-00000000", None, Decimal("0.25"), "USD", None)
    assert source.handed_out < total / 10
    rows.close()
    assert not source.closed  # the caller owns the file


def test_the_file_stays_open_after_the_rows_are_read() -> None:
    source = io.BytesIO(b"click_id\nc1\n")
    _, rows = open_report(source)
    assert len(list(rows)) == 1
    assert not source.closed


def test_old_mac_line_ends_and_a_file_read_from_where_it_was_handed_over() -> None:
    source = io.BytesIO(b"junk before\nclick_id,amount\rc1,1\rc2,2\r")
    source.seek(12)
    layout, rows = open_report(source)
    assert layout.header == ("click_id", "amount")
    assert [(row.line, row.click_id) for row in rows if isinstance(row, ReportRow)] == [
        (2, "c1"),
        (3, "c2"),
    ]


def test_no_value_markers_in_optional_columns_read_as_empty() -> None:
    data = "click_id,event,amount,currency,time\nnull,-,N/A,NULL,0000-00-00 00:00:00\n"
    _, rows = read(data)
    assert rows == [ReportRow(2, "null", None, None, None, None)]
