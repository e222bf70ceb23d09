"""Parsed views of raw bytes: lenient, ordered, never failing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.rules.params import (
    MAX_JSON_DEPTH,
    MAX_JSON_VALUES,
    MAX_PARAMS,
    MAX_PARSED_BODY_BYTES,
    MAX_TEXT_CHARS,
    MAX_VIEW_CHARS,
    View,
    body_view,
    parse_body,
    parse_query,
    query_view,
    text,
)


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


# Bounded views: a hostile body costs what a few hundred params cost, and says it was cut.

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def test_json_walk_stops_at_the_param_cap_without_reading_further() -> None:
    # Past the cap the document is not even read: the garbage there would make it
    # invalid JSON, so a view built after parsing the whole body would be empty.
    body = b"[" + b"7," * (MAX_PARAMS + 1) + b"not json at all"
    view = body_view(JSON, body)
    assert view.params == [(str(i), "7") for i in range(MAX_PARAMS)]
    assert view.cuts == (f"more than {MAX_PARAMS} params",)


def test_form_and_query_stop_at_the_param_cap() -> None:
    raw = b"&".join(b"p%d=%%41" % i for i in range(MAX_PARAMS + 500))
    for view in (query_view(raw), body_view(FORM, raw)):
        assert len(view.params) == MAX_PARAMS and view.params[-1] == (f"p{MAX_PARAMS - 1}", "A")
        assert view.cuts == (f"more than {MAX_PARAMS} params",)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # past any JSON parser's own recursion limit
        b"[" * 990 + b"1" + b"]" * 990,  # parses, then used to overflow the flattening
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
    ],
)
def test_deep_nesting_is_a_cut_not_an_exception(body: bytes) -> None:
    view = body_view(JSON, body)
    assert view.params == []
    assert view.cuts == (f"JSON nested deeper than {MAX_JSON_DEPTH} levels",)


def test_params_above_the_depth_cap_are_kept() -> None:
    body = b'{"click_id": "c1", "deep": ' + b"[" * 100 + b"]" * 100 + b"}"
    view = body_view(JSON, body)
    assert view.params == [("click_id", "c1")]
    assert view.cuts == (f"JSON nested deeper than {MAX_JSON_DEPTH} levels",)


def test_values_that_yield_no_param_still_count() -> None:
    body = b"[" + b"[],{},null," * 5000 + b"1]"
    view = body_view(JSON, body)
    assert view.params == []
    assert view.cuts == (f"more than {MAX_JSON_VALUES} JSON values",)


@pytest.mark.parametrize(
    ("content_type", "body", "name"),
    [
        (FORM, b"click_id=" + b"%7B" * 5000 + b"&event=sale", "click_id"),
        (JSON, b'{"click_id": "' + b"\\u00e9" * 5000 + b'", "event": "sale"}', "click_id"),
        (JSON, b'{"' + b"k" * 5000 + b'": "x", "event": "sale"}', None),
    ],
)
def test_long_names_and_values_are_clipped_and_the_walk_goes_on(
    content_type: str, body: bytes, name: str | None
) -> None:
    view = body_view(content_type, body)
    (first_name, first_value), following = view.params
    assert len(first_name) <= MAX_TEXT_CHARS and len(first_value) <= MAX_TEXT_CHARS
    assert name is None or first_name == name
    assert following == ("event", "sale")
    assert view.cuts == (f"names or values over {MAX_TEXT_CHARS} characters clipped",)


def test_all_names_and_values_together_are_bounded() -> None:
    value = b"v" * MAX_TEXT_CHARS
    body = b"&".join(b"p%d=%s" % (i, value) for i in range(100))
    view = body_view(FORM, body)
    assert sum(len(n) + len(v) for n, v in view.params) <= MAX_VIEW_CHARS
    assert 0 < len(view.params) < 100
    assert view.cuts == (f"more than {MAX_VIEW_CHARS} characters of names and values",)


def test_bodies_past_the_parse_limit_are_cut_whole() -> None:
    body = b"a=1&" * (MAX_PARSED_BODY_BYTES // 4 + 1)
    assert body_view(FORM, body) == View(
        [], (f"bodies over {MAX_PARSED_BODY_BYTES} bytes are not parsed",)
    )
    assert body_view("application/octet-stream", body) == View([])


def test_lone_surrogates_and_nul_in_json_become_replacement_characters() -> None:
    view = body_view(JSON, b'{"a\\u0000": "\\ud800x", "b": "\\udcff"}')
    assert view == View([("a\ufffd", "\ufffdx"), ("b", "\ufffd")])


def test_repeated_json_keys_are_kept_in_order_like_repeated_query_params() -> None:
    assert parse_body(JSON, b'{"cid": "a", "x": 1, "cid": "b"}') == [
        ("cid", "a"), ("x", "1"), ("cid", "b"),
    ]  # fmt: skip


def test_whole_views_name_no_cut() -> None:
    assert query_view(b"click_id=c1&payout=1.5") == View([("click_id", "c1"), ("payout", "1.5")])
    assert body_view(JSON, b'{"n": [1, 2.50, -0, 1e400, NaN]}').cuts == ()
    assert parse_body(JSON, b'{"n": [1, 2.50, -0, 1e400]}') == [
        ("n.0", "1"), ("n.1", "2.5"), ("n.2", "0"), ("n.3", "Infinity"),
    ]  # fmt: skip


@given(st.binary(max_size=300), st.sampled_from([JSON, FORM, ""]))
def test_views_never_fail_and_stay_storable(body: bytes, content_type: str) -> None:
    for view in (query_view(body), body_view(content_type, body)):
        for name, value in view.params:
            assert "\x00" not in name + value
            (name + value).encode("utf-8")
