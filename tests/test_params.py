"""Parsed views of raw bytes: lenient, ordered, never failing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.params import parse_body, parse_query, text


def test_query_is_lenient_and_keeps_order_and_repeats() -> None:
    raw = b"a=1&b=%7Bx%7D&c&d=%zz&e=a+b&f=%00&g=%ff&a=2&&=v&k=%257B"
    assert parse_query(raw) == [
        ("a", "1"), ("b", "{x}"), ("c", ""), ("d", "%zz"), ("e", "a b"), ("f", "\ufffd"),
        ("g", "\ufffd"), ("a", "2"), ("", "v"), ("k", "%7B"),
    ]  # fmt: skip


def test_text_never_holds_nul_or_invalid_utf8() -> None:
    assert text(b"caf\xc3\xa9 \x00 \xff") == "café \ufffd \ufffd"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (
            "application/json",
            b'{"a": {"b": 1, "c": [true, null, "x"]}, "d": 1.5}',
            [("a.b", "1"), ("a.c.0", "true"), ("a.c.2", "x"), ("d", "1.5")],
        ),
        (
            "application/x-www-form-urlencoded",
            b"click_id=c1&payout=2.00",
            [("click_id", "c1"), ("payout", "2.00")],
        ),
        # JSON sent with a form content type is a real sender bug: still parsed.
        ("application/x-www-form-urlencoded", b'{"click_id": "c2"}', [("click_id", "c2")]),
        ("application/vnd.api+json", b'[{"id": 7}]', [("0.id", "7")]),
        ("text/plain", b"click_id=c3", []),
        ("application/json", b"{not json", []),
        ("application/octet-stream", b"\x00\xff", []),
    ],
)
def test_body_params(content_type: str, body: bytes, expected: list[tuple[str, str]]) -> None:
    assert parse_body(content_type, body) == expected


@given(st.binary(max_size=300))
def test_query_parsing_never_fails(raw: bytes) -> None:
    for name, value in parse_query(raw):
        assert "\x00" not in name + value
        (name + value).encode("utf-8")  # storable


@given(st.text(max_size=20), st.binary(max_size=300))
def test_body_parsing_never_fails(content_type: str, body: bytes) -> None:
    for name, value in parse_body(content_type, body):
        (name + value).encode("utf-8")


@given(st.binary(max_size=200).map(lambda b: b.replace(b"%", b"").replace(b"+", b"")))
def test_fast_path_parses_like_the_unescaping_path(raw: bytes) -> None:
    # A trailing "&%" forces the unescaping path and adds one ("%", "") pair.
    assert parse_query(raw + b"&%")[:-1] == parse_query(raw)
