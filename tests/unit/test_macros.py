"""Unreplaced-macro detection: every syntax in the rule, and the near-misses it must pass."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.rules.macros import FILLERS, TRIGGER_CHARS, find_macro, is_macro

MACROS = [
    # (value as judge sees it, token reported)
    ("{clickid}", "{clickid}"),
    ("{{click_id}}", "{{click_id}}"),
    ("{ aff_param1 }", "{ aff_param1 }"),
    ("{advertiserId}", "{advertiserId}"),
    ("{_subid}", "{_subid}"),
    ("{status:lead=0 sale=1}", "{status:lead=0 sale=1}"),
    ("${SUBID}", "${SUBID}"),
    ("${(name)!}", "${(name)!}"),
    ("[CLICK_ID]", "[CLICK_ID]"),
    ("[subid]", "[subid]"),
    ("[[click_id]]", "[[click_id]]"),
    ("#s2#", "#s2#"),
    ("#S1#", "#S1#"),
    ("##CLICK_ID##", "##CLICK_ID##"),
    ("%%SUBID%%", "%%SUBID%%"),
    ("%TRANSACTION_ID%", "%TRANSACTION_ID%"),
    ("%ADV_SUB%", "%ADV_SUB%"),
    ("$sub1$", "$sub1$"),
    ("<click_id>", "<click_id>"),
    ("<CLICKID>", "<CLICKID>"),
    ("$CLICK_ID", "$CLICK_ID"),
    ("!!!clickRef!!!", "!!!clickRef!!!"),
    ("REPLACE", "REPLACE"),
    ("OPTIONAL", "OPTIONAL"),
    ("REPLACE_ME", "REPLACE_ME"),
    # embedded
    ("abc{sub1}", "{sub1}"),
    ("cid_[CLICK_ID]", "[CLICK_ID]"),
    ("x-#s2#-y", "#s2#"),
    ('{"click_id":"{clickid}"}', "{clickid}"),
    ("Order {order_id} paid", "{order_id}"),
    # still percent-encoded once or twice after the parser's own decode
    ("%7Bclickid%7D", "{clickid}"),
    ("%7bclickid%7d", "{clickid}"),
    ("%257Bclickid%257D", "{clickid}"),
    ("%5BCLICK_ID%5D", "[CLICK_ID]"),
    ("%23s2%23", "#s2#"),
    ("%2523s2%2523", "#s2#"),
    ("%24%7BSUBID%7D", "${SUBID}"),
    ("%25%25SUBID%25%25", "%%SUBID%%"),
    ("%5Bsubid%5D%20", "[subid]"),
]

CLEAN = [
    "",
    "abc123",
    "1.50",
    "50%",
    "100%25",
    "a%20b",
    "a b",
    "%E2%82%AC",
    "%C3%A9t%C3%A9",
    "%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82",
    "john.doe+test@example.com",
    "John <john@example.com>",
    '{"af_revenue":"9.99"}',
    "%7B%22af_revenue%22%3A%229.99%22%7D",
    '["a","b"]',
    "{}",
    "[]",
    "{1}",
    "[0]",
    "Summer [Sale] 2024",
    "[promo] Black Friday",
    "save 20% now and 10% later",
    "price #1 in #sales today",
    "Total $5 and $6",
    "<b>Sale</b>",
    "line<br>break",
    "https://shop.example/?items[sku]=1",
    "#1",
    "#",
    "US$",
    "$4.00",
    "4.00$",
    "Replace",
    "optional",
    "REPLACE now",
    "CLICK_ID",
    "TRANSACTION_ID",
    "(idfa)",
    "a%b",
    "%",
    "%%",
    "{{}}",
    "${",
    "<>",
    "<1>",
    "#a#",
    "%x%",
]


@pytest.mark.parametrize(("value", "token"), MACROS)
def test_macro_is_found(value: str, token: str) -> None:
    assert find_macro(value) == token
    assert is_macro(value)


@pytest.mark.parametrize("value", CLEAN)
def test_clean_value_is_not_a_macro(value: str) -> None:
    assert find_macro(value) is None


def test_fillers_are_whole_value_and_case_sensitive() -> None:
    assert find_macro("  REPLACE ") == "REPLACE"
    assert find_macro("REPLACE-1") is None
    assert find_macro("Optional") is None


def test_weak_syntaxes_do_not_count_in_free_text() -> None:
    assert find_macro("[CLICK_ID]") == "[CLICK_ID]"
    assert find_macro("Order [CLICK_ID] done") is None
    assert find_macro("Order [[CLICK_ID]] done") == "[[CLICK_ID]]"
    assert find_macro("Summer%20%5BSale%5D") is None


def test_free_text_with_html_like_macro_name_is_not_markup() -> None:
    assert find_macro("<sub1>") == "<sub1>"
    assert find_macro("<sub>") is None


@given(st.text(alphabet=st.characters(blacklist_characters=TRIGGER_CHARS)))
def test_values_without_trigger_characters_are_clean_unless_fillers(value: str) -> None:
    assert (find_macro(value) is not None) == (value.strip() in FILLERS)


@given(st.text())
def test_find_macro_never_raises(value: str) -> None:
    token = find_macro(value)
    assert token is None or isinstance(token, str)


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{1,20}", fullmatch=True))
def test_every_name_in_every_strong_syntax_is_found(name: str) -> None:
    for template in ("{%s}", "{{%s}}", "${%s}", "[[%s]]", "##%s##", "%%%%%s%%%%"):
        assert find_macro(template % name) is not None, template % name
        assert find_macro("x" + template % name + " y") is not None
