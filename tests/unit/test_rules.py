"""Rules as pure functions: settings validation, every flag, precedence, dedupe keys."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.model.errors import SettingsError
from monitor.model.verdict import Verdict
from monitor.rules import (
    AMOUNT_NAMES,
    CLICK_ID_NAMES,
    CURRENCY_NAMES,
    Rules,
    compile_settings,
    duplicate_flag,
    judge,
)
from monitor.rules.endpoint_settings import compile_endpoint_settings

SECRET = "k9Zx41pQmw"


def run(
    settings_doc: dict[str, Any],
    params: list[tuple[str, str]],
    *,
    remote_ip: str | None = "203.0.113.7",
    headers: list[tuple[str, str]] | None = None,
) -> Verdict:
    return judge(compile_settings(settings_doc), params, remote_ip=remote_ip, headers=headers or [])


def names(verdict: Verdict) -> list[str]:
    return sorted(flag["flag"] for flag in verdict.flags)


def only(verdict: Verdict, name: str) -> dict[str, Any]:
    matching = [flag for flag in verdict.flags if flag["flag"] == name]
    assert len(matching) == 1, verdict.flags
    return matching[0]


# ------------------------------------------------------------------ compile_settings


def test_empty_settings_compile_to_defaults() -> None:
    rules = compile_settings({})
    assert rules.document == {}
    assert rules.required_params == ()
    assert rules.click_id_names == CLICK_ID_NAMES
    assert rules.dedupe_scope == "click_id_event"
    assert rules.dedupe_window_s is None
    assert rules.allowed_networks is None
    assert rules.secret is None
    assert Rules() == rules


@pytest.mark.parametrize(
    ("document", "starts"),
    [
        ([], "settings:"),
        ("x", "settings:"),
        ({"clickid_param": "cid"}, "clickid_param: unknown setting; did you mean click_id_param?"),
        ({"required": ["cid"]}, "required: unknown setting"),
        ({"required_params": "cid"}, "required_params: must be a list of strings"),
        ({"required_params": ["cid", 3]}, "required_params: must be a list of strings"),
        ({"required_params": ["cid", " "]}, "required_params[1]: must be a non-empty string"),
        ({"click_id_param": ""}, "click_id_param: must be a non-empty string"),
        ({"click_id_param": 5}, "click_id_param: must be a non-empty string"),
        ({"event_param": ["a"]}, "event_param:"),
        ({"amount_param": "x" * 300}, "amount_param: longer than"),
        ({"currency_param": True}, "currency_param:"),
        ({"preset": "volum"}, "preset: unknown preset 'volum'; did you mean voluum?"),
        ({"preset": 1}, "preset: must be"),
        ({"dedupe": "24h"}, "dedupe: must be an object"),
        ({"dedupe": {"scope": "event"}}, "dedupe.scope: must be one of"),
        ({"dedupe": {"windw": "1h"}}, "dedupe.windw: unknown setting; did you mean window?"),
        ({"dedupe": {"window": "1 week"}}, "dedupe.window: must be seconds"),
        ({"dedupe": {"window": "24"}}, "dedupe.window: must be seconds"),
        ({"dedupe": {"window": 0}}, "dedupe.window: must be more than zero"),
        ({"dedupe": {"window": -5}}, "dedupe.window: must be more than zero"),
        ({"dedupe": {"window": True}}, "dedupe.window: must be seconds"),
        ({"dedupe": {"window": "3651d"}}, "dedupe.window: at most 3650d"),
        ({"dedupe": {"window": 1e300}}, "dedupe.window: at most 3650d"),
        ({"allowed_ips": "10.0.0.0/8"}, "allowed_ips: must be a list"),
        ({"allowed_ips": ["10.0.0.0/8", "10.0.0.300"]}, "allowed_ips[1]: '10.0.0.300' is not"),
        ({"allowed_ips": ["192.168.1.5/24"]}, "allowed_ips[0]: '192.168.1.5/24' has host bits set; "
         "did you mean 192.168.1.0/24?"),
        ({"secret": "abc"}, "secret: must be"),
        ({"secret": {"value": "abc"}}, "secret: needs exactly one of param or header"),
        ({"secret": {"value": "abc", "param": "t", "header": "X-T"}}, "secret: needs exactly one"),
        ({"secret": {"value": "", "param": "t"}}, "secret.value: must be a non-empty string"),
        ({"secret": {"value": 123, "param": "t"}}, "secret.value: must be a non-empty string"),
        ({"secret": {"value": "abc", "header": "X Token"}}, "secret.header: must be an HTTP"),
        ({"secret": {"value": "abc", "param": "t", "hash": "md5"}}, "secret.hash: unknown setting"),
    ],
)  # fmt: skip
def test_invalid_settings_name_the_setting(document: Any, starts: str) -> None:
    with pytest.raises(SettingsError) as caught:
        compile_settings(document)
    assert str(caught.value).startswith(starts), str(caught.value)


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize(
    ("window", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("90s", 90.0), ("30m", 1800.0), ("24h", 86400.0),
     (" 7D ", 604800.0), ("0.5h", 1800.0), ("3650d", 3650 * 86400.0)],
)  # fmt: skip
def test_dedupe_window_formats(window: Any, seconds: float) -> None:
    rules = compile_settings({"dedupe": {"window": window}})
    assert rules.dedupe_window_s == seconds
    assert run({"dedupe": {"window": window}}, [("cid", "a")]).dedupe_window_s == seconds


def test_document_is_normalized_json_and_idempotent() -> None:
    document = {
        "preset": " Voluum ",
        "required_params": [" cid ", "payout", "cid"],
        "click_id_param": " cid",
        "event_param": None,
        "dedupe": {"scope": "click_id", "window": " 24H "},
        "allowed_ips": [" 10.0.0.0/8", "2001:db8::/32", "198.51.100.7"],
        "secret": {"value": f" {SECRET} ", "header": " X-Postback-Token "},
    }
    rules = compile_settings(document)
    assert rules.document == {
        "preset": "voluum",
        "required_params": ["cid", "payout"],
        "click_id_param": "cid",
        "dedupe": {"scope": "click_id", "window": "24h"},
        "allowed_ips": ["10.0.0.0/8", "2001:db8::/32", "198.51.100.7"],
        "secret": {"value": SECRET, "header": "X-Postback-Token"},
    }
    assert json.loads(json.dumps(rules.document)) == rules.document
    assert compile_settings(rules.document) == rules


def test_repr_never_shows_the_secret() -> None:
    rules = compile_settings({"secret": {"value": SECRET, "param": "token"}})
    assert SECRET not in repr(rules)


def test_preset_fills_names_and_explicit_settings_win() -> None:
    rules = compile_settings({"preset": "binom"})
    assert rules.click_id_names == ("cnv_id",)
    assert rules.event_names == ("cnv_status",)
    assert rules.amount_names == ("payout",)
    assert rules.currency_names == ("cnv_currency",)
    assert rules.required_params == ("cnv_id",)
    assert rules.document == {"preset": "binom"}
    rules = compile_settings(
        {"preset": "binom", "click_id_param": "clickid", "required_params": []}
    )
    assert rules.click_id_names == ("clickid",)
    assert rules.required_params == ()


def test_preset_without_currency_param_checks_common_currency_names() -> None:
    assert compile_settings({"preset": "everflow"}).currency_names == CURRENCY_NAMES


def test_empty_allowed_ips_means_any() -> None:
    assert compile_settings({"allowed_ips": []}).allowed_networks is None
    assert run({"allowed_ips": []}, [], remote_ip=None).flags == []


# ---------------------------------------------------------------------- missing_param


def test_missing_and_empty_required_params() -> None:
    verdict = run({"required_params": ["cid", "payout"]}, [("payout", "  ")])
    assert names(verdict) == ["missing_param", "missing_param"]
    cid, payout = verdict.flags
    assert (cid["param"], cid["value"]) == ("cid", None)
    assert cid["message"] == "Required parameter cid is missing."
    assert (payout["param"], payout["value"]) == ("payout", "")
    assert payout["message"] == "Required parameter payout is empty."


@pytest.mark.parametrize(
    ("required", "params", "hint"),
    [
        ("cid", [("CID", "abc")], "CID"),
        ("click_id", [("clickId", "abc")], "clickId"),
        ("click_id", [("data.click_id", "abc")], "data.click_id"),
        ("cid", [("subid", "abc")], "subid"),
        ("subid", [("sub_id", "abc")], "sub_id"),
        ("payout", [("sum", "1.5")], "sum"),
        ("currency", [("cur", "USD")], "cur"),
    ],
)
def test_missing_param_suggests_a_name(
    required: str, params: list[tuple[str, str]], hint: str
) -> None:
    flag = only(run({"required_params": [required]}, params), "missing_param")
    assert flag["did_you_mean"] == hint
    assert flag["message"] == f"Required parameter {required} is missing; did you mean {hint}?"


def test_missing_param_without_a_near_name_has_no_hint() -> None:
    flag = only(run({"required_params": ["cid"]}, [("offer", "1")]), "missing_param")
    assert "did_you_mean" not in flag


def test_names_are_case_sensitive() -> None:
    assert names(run({"required_params": ["cid"]}, [("Cid", "x")])) == ["missing_param"]


# ------------------------------------------------------------------- unreplaced_macro


def test_macro_gets_only_unreplaced_macro() -> None:
    settings_doc = {"required_params": ["cid", "payout", "currency"]}
    verdict = run(
        settings_doc, [("cid", "{clickid}"), ("payout", "#price#"), ("currency", "[CUR]")]
    )
    assert names(verdict) == ["unreplaced_macro"] * 3
    flag = verdict.flags[0]
    assert flag == {
        "flag": "unreplaced_macro",
        "param": "cid",
        "value": "{clickid}",
        "macro": "{clickid}",
        "message": "Parameter cid still holds the placeholder {clickid}, "
        "so the sender did not replace it with a real value.",
    }


def test_macros_in_any_param_are_flagged_once_per_param() -> None:
    verdict = run({}, [("sub3", "{sub3}"), ("sub3", "[x_y]"), ("note", "ok"), ("p1", "REPLACE")])
    assert [(flag["param"], flag["value"]) for flag in verdict.flags] == [
        ("sub3", "{sub3}"),
        ("p1", "REPLACE"),
    ]


def test_macro_flags_are_bounded() -> None:
    verdict = run({}, [(f"s{i}", "{x}") for i in range(500)])
    assert len(verdict.flags) == 20


def test_long_values_are_clipped_in_flags() -> None:
    flag = only(run({}, [("payout", "9" * 5000 + "x")]), "invalid_amount")
    assert len(flag["value"]) == 200
    assert len(flag["message"]) < 400


# --------------------------------------------------------------- amount and currency


@pytest.mark.parametrize("amount", ["0", "0.00", "12", "1.50", "0012.5", " 3.75 "])
def test_valid_amounts(amount: str) -> None:
    assert run({}, [("payout", amount)]).flags == []


@pytest.mark.parametrize(
    "amount",
    ["1,50", "1,500.00", "1.500,00", "1 499,00", "$1.50", "12.00USD", "-5.", "--5", "- 5",
     "-.5", "+5", "NaN", "nan", "inf", "1e3", "12.", ".5", "１２", "٣", "0x10", "1.2.3", "abc"],
)  # fmt: skip
def test_invalid_amounts(amount: str) -> None:
    flag = only(run({}, [("payout", amount)]), "invalid_amount")
    assert flag["param"] == "payout"
    assert flag["value"] == amount.strip()


@pytest.mark.parametrize(
    ("params", "amount", "currency"),
    [
        ([("payout", " 12.50 "), ("currency", "usd")], 12.5, "USD"),
        ([("payout", "1,5"), ("currency", "US$")], None, None),
        ([("revenue", "3"), ("payout", "")], 3.0, None),
        ([("payout", "9" * 400)], None, None),  # a float would be infinite
        ([("payout", "{payout}"), ("currency", "{cur}")], None, None),
        ([], None, None),
    ],
)
def test_verdict_carries_the_valid_amount_and_currency(
    params: list[tuple[str, str]], amount: float | None, currency: str | None
) -> None:
    verdict = run({}, params)
    assert (verdict.amount, verdict.currency) == (amount, currency)


def test_every_common_amount_name_is_checked_when_not_set() -> None:
    verdict = run({}, [(name, "1,5") for name in AMOUNT_NAMES])
    assert [flag["param"] for flag in verdict.flags] == list(AMOUNT_NAMES)


def test_only_the_configured_amount_param_is_checked_when_set() -> None:
    verdict = run({"amount_param": "rev"}, [("rev", "1,5"), ("payout", "abc")])
    assert [flag["param"] for flag in verdict.flags] == ["rev"]


def test_empty_optional_amount_and_currency_are_not_flagged() -> None:
    assert run({}, [("payout", ""), ("currency", " ")]).flags == []


def test_empty_required_amount_is_missing_not_invalid() -> None:
    assert names(run({"required_params": ["payout"]}, [("payout", "")])) == ["missing_param"]


@pytest.mark.parametrize("code", ["USD", "usd", "Eur", "XAU", "XDR", "JPY", "CHF", "XCG", "ZWG"])
def test_valid_currencies(code: str) -> None:
    assert run({}, [("currency", code)]).flags == []


@pytest.mark.parametrize("code", ["€", "US$", "dollar", "EURO", "USDT", "BTC", "руб", "US", "HRK"])
def test_invalid_currencies(code: str) -> None:
    flag = only(run({}, [("cur", code)]), "invalid_currency")
    assert flag["param"] == "cur"


# ------------------------------------------------------------------------ ip and secret


@pytest.mark.parametrize(
    ("remote_ip", "flagged"),
    [("10.1.2.3", False), ("198.51.100.7", False), ("::ffff:10.9.9.9", False),
     ("2001:db8::1", False), ("11.0.0.1", True), ("2001:db9::1", True), (None, True),
     ("", True), ("not-an-ip", True)],
)  # fmt: skip
def test_allowed_ips(remote_ip: str | None, flagged: bool) -> None:
    settings_doc = {"allowed_ips": ["10.0.0.0/8", "198.51.100.7", "2001:db8::/32"]}
    verdict = run(settings_doc, [("cid", "a")], remote_ip=remote_ip)
    assert names(verdict) == (["ip_not_allowed"] if flagged else [])
    if flagged:
        assert verdict.flags[0]["param"] is None


def test_secret_in_param() -> None:
    settings_doc = {"secret": {"value": SECRET, "param": "token"}}
    assert run(settings_doc, [("token", f" {SECRET} ")]).flags == []
    absent = only(run(settings_doc, []), "secret_mismatch")
    assert absent["value"] is None
    assert absent["message"] == "The shared secret is missing: parameter token is absent."
    wrong = only(run(settings_doc, [("token", "k9-old-token-123")]), "secret_mismatch")
    assert wrong["value"] == "k9***, 16 characters"
    assert wrong["param"] == "token"
    short = only(run(settings_doc, [("token", "abc")]), "secret_mismatch")
    assert short["value"] == "***, 3 characters"


def test_secret_in_header_is_matched_case_insensitively() -> None:
    settings_doc = {"secret": {"value": SECRET, "header": "X-Postback-Token"}}
    assert run(settings_doc, [], headers=[("x-postback-token", SECRET)]).flags == []
    wrong = only(run(settings_doc, [("X-Postback-Token", SECRET)]), "secret_mismatch")
    assert wrong["param"] is None
    assert "header X-Postback-Token" in wrong["message"]


def test_secret_never_appears_in_flags() -> None:
    settings_doc = {
        "secret": {"value": SECRET, "param": "token"},
        "required_params": ["cid"],
        "allowed_ips": ["10.0.0.0/8"],
    }
    for token in ("", "x", SECRET[:-1], SECRET + "x", SECRET.upper(), "{token}"):
        verdict = run(settings_doc, [("token", token)])
        assert SECRET not in json.dumps(verdict.flags)


def test_secret_that_looks_like_a_macro_is_accepted_when_equal() -> None:
    settings_doc = {"secret": {"value": "{abc}", "param": "token"}}
    assert run(settings_doc, [("token", "{abc}")]).flags == []
    assert names(run(settings_doc, [("token", "{abd}")])) == ["unreplaced_macro"]


def test_secret_compare_survives_non_ascii_and_surrogates() -> None:
    settings_doc = {"secret": {"value": "pässwörd", "param": "t"}}
    assert run(settings_doc, [("t", "pässwörd")]).flags == []
    assert names(run(settings_doc, [("t", "\udcff\ud800")])) == ["secret_mismatch"]


# --------------------------------------------------------- click id, event and dedupe


def test_query_param_wins_over_body_param_with_the_same_name() -> None:
    verdict = run({}, [("cid", "from-query"), ("cid", "from-body"), ("payout", "1")])
    assert verdict.click_id == "from-query"


def test_click_id_auto_detection_follows_the_documented_order() -> None:
    params = [(name, f"v-{name}") for name in reversed(CLICK_ID_NAMES)]
    for index, name in enumerate(CLICK_ID_NAMES):
        verdict = run({}, params[: len(params) - index])
        assert (verdict.click_id_param, verdict.click_id) == (name, f"v-{name}")


def test_click_id_auto_detection_skips_empty_values() -> None:
    verdict = run({}, [("clickid", " "), ("subid", "abc")])
    assert (verdict.click_id_param, verdict.click_id) == ("subid", "abc")
    verdict = run({}, [("clickid", " ")])
    assert (verdict.click_id_param, verdict.click_id, verdict.dedupe_key) == ("clickid", None, None)


def test_explicit_click_id_param_disables_detection() -> None:
    verdict = run({"click_id_param": "s2"}, [("cid", "abc"), ("s2", " x1 ")])
    assert (verdict.click_id_param, verdict.click_id) == ("s2", "x1")
    verdict = run({"click_id_param": "s2"}, [("cid", "abc")])
    assert (verdict.click_id_param, verdict.click_id, verdict.dedupe_key) == (None, None, None)


def test_dedupe_key_includes_event_by_default() -> None:
    verdict = run({}, [("clickid", "abc"), ("event", "install")])
    assert verdict.event == "install"
    assert verdict.dedupe_key == ("abc", "install")
    assert run({}, [("clickid", "abc")]).dedupe_key == ("abc", "")


def test_dedupe_scope_click_id_ignores_event() -> None:
    verdict = run({"dedupe": {"scope": "click_id"}}, [("clickid", "abc"), ("goal", "2")])
    assert verdict.event == "2"
    assert verdict.dedupe_key == ("abc", "")


def test_dedupe_scope_off() -> None:
    assert run({"dedupe": {"scope": "off"}}, [("clickid", "abc")]).dedupe_key is None


def test_macro_click_ids_never_dedupe_but_are_reported() -> None:
    verdict = run({}, [("clickid", "%7Bclickid%7D")])
    assert verdict.click_id == "%7Bclickid%7D"
    assert verdict.dedupe_key is None
    assert names(verdict) == ["unreplaced_macro"]


def test_macro_event_dedupes_on_click_id_alone() -> None:
    verdict = run({}, [("clickid", "abc"), ("event", "{event_name}")])
    assert verdict.event == "{event_name}"
    assert verdict.dedupe_key == ("abc", "")


def test_flagged_hits_still_dedupe() -> None:
    verdict = run({"required_params": ["txid"]}, [("cid", "abc"), ("payout", "1,5")])
    assert names(verdict) == ["invalid_amount", "missing_param"]
    assert verdict.dedupe_key == ("abc", "")


def test_duplicate_flag() -> None:
    first = uuid.UUID("0191e7a2-6f1c-7c3e-9b7a-3f2d1c0b4a59")
    verdict = run({}, [("cid", "abc"), ("status", "sale")])
    flag = duplicate_flag(verdict, first)
    assert flag["flag"] == "duplicate_click_id"
    assert (flag["param"], flag["value"]) == ("cid", "abc")
    assert flag["first_hit_id"] == str(first)
    assert flag["message"] == (
        f'Click id "abc" with event "sale" was already captured on this endpoint, '
        f"first by hit {first}."
    )


# ------------------------------------------------------------------------- properties

json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
setting_key = st.sampled_from(
    ["preset", "required_params", "click_id_param", "event_param", "amount_param",
     "currency_param", "dedupe", "allowed_ips", "secret", "scope", "window", "value", "param",
     "header"]
)  # fmt: skip
settings_like = st.dictionaries(
    setting_key,
    json_value
    | st.dictionaries(setting_key, json_value, max_size=3)
    | st.lists(st.text(max_size=20), max_size=4),
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_value, settings_like))
def test_compile_settings_raises_only_settings_error(document: Any) -> None:
    try:
        rules = compile_settings(document)
    except SettingsError:
        return
    assert json.loads(json.dumps(rules.document)) == rules.document
    assert compile_settings(rules.document) == rules


RULES = [
    compile_settings({}),
    compile_settings({"preset": "voluum", "dedupe": {"window": "1h"}}),
    compile_settings(
        {
            "required_params": ["cid", "payout", "currency", "token"],
            "click_id_param": "cid",
            "event_param": "et",
            "amount_param": "payout",
            "currency_param": "currency",
            "dedupe": {"scope": "click_id", "window": 60},
            "allowed_ips": ["10.0.0.0/8", "2001:db8::/32"],
            "secret": {"value": SECRET, "param": "token"},
        }
    ),
    compile_settings({"secret": {"value": "ünïcode", "header": "X-Token"}}),
]
any_text = st.text(max_size=40)
param_name = st.sampled_from(["cid", "payout", "currency", "token", "et", "clickid"]) | any_text


@settings(max_examples=500, deadline=None)
@given(
    rules=st.sampled_from(RULES),
    params=st.lists(st.tuples(param_name, any_text), max_size=12),
    remote_ip=st.none() | st.ip_addresses().map(str) | any_text,
    headers=st.lists(st.tuples(st.sampled_from(["X-Token", "x-token"]) | any_text, any_text)),
)
def test_judge_never_raises(
    rules: Rules,
    params: list[tuple[str, str]],
    remote_ip: str | None,
    headers: list[tuple[str, str]],
) -> None:
    verdict = judge(rules, params, remote_ip=remote_ip, headers=headers)
    for flag in verdict.flags:
        assert {"flag", "param", "value", "message"} <= flag.keys()
        assert flag["message"].endswith((".", "?"))
    json.dumps(verdict.flags)
    if verdict.dedupe_key is not None:
        assert verdict.dedupe_key[0] == verdict.click_id


@pytest.mark.parametrize(
    ("value", "seconds", "stored"),
    [
        (None, 1800.0, None),
        ("6h", 21600.0, "6h"),
        (" 90M ", 5400.0, "90m"),
        (600, 600.0, 600),
        ("OFF", None, "off"),
    ],
)
def test_expected_interval_setting(value: Any, seconds: float | None, stored: Any) -> None:
    compiled = compile_endpoint_settings({"expected_interval": value})
    assert compiled.expected_interval_s == seconds
    assert compiled.document.get("expected_interval") == stored


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30s", "expected_interval: at least 60 seconds"),
        (0, "expected_interval: at least 60 seconds"),
        ("3651d", "expected_interval: at most 3650d"),
        ("soon", "expected_interval: must be seconds (a number) or a string like"),
        (True, "expected_interval: must be seconds"),
    ],
)
def test_expected_interval_refusals(value: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        compile_endpoint_settings({"expected_interval": value})
