"""Odd payouts as pure rules: negative_amount in judge, amount_outlier's robust statistics."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model.errors import SettingsError
from monitor.model.verdict import Verdict
from monitor.rules import compile_settings, judge
from monitor.rules.endpoint_settings import compile_endpoint_settings
from monitor.rules.outliers import (
    AmountOutlierRule,
    AmountSample,
    compile_amount_outlier,
    is_outlier,
    outlier_flag,
)


def run(settings_doc: dict[str, Any], params: list[tuple[str, str]]) -> Verdict:
    rules = compile_settings(settings_doc)
    return judge(rules, params, remote_ip="203.0.113.7", headers=[])


def names(verdict: Verdict) -> list[str]:
    return sorted(flag["flag"] for flag in verdict.flags)


# ------------------------------------------------------------------ negative_amount


@pytest.mark.parametrize(
    ("settings_doc", "params", "flagged"),
    [
        # A plain negative decimal with no status, or a status that is no reversal.
        ({}, [("click_id", "a"), ("payout", "-5")], True),
        ({}, [("click_id", "a"), ("payout", "-12.50")], True),
        ({}, [("click_id", "a"), ("payout", "-12.50"), ("status", "sale")], True),
        ({}, [("click_id", "a"), ("payout", "-3"), ("status", "approved")], True),
        # rejected is no reversal: nothing was paid, so nothing is taken back.
        ({}, [("click_id", "a"), ("payout", "-3"), ("status", "rejected")], True),
        # A refund or chargeback is negative on some platforms: no flag.
        ({}, [("click_id", "a"), ("payout", "-5"), ("status", "refund")], False),
        ({}, [("click_id", "a"), ("payout", "-5"), ("status", "chargeback")], False),
        ({}, [("click_id", "a"), ("payout", "-5"), ("transactionType", "RFND")], False),
        # RedTrack's negative sum refund (the corpus's entry): type=Refund.
        ({"preset": "redtrack"}, [("clickid", "a"), ("sum", "-49.99"), ("type", "Refund")], False),
        ({"preset": "redtrack"}, [("clickid", "a"), ("sum", "-49.99"), ("type", "Purchase")], True),
        # Zero with a sign is no negative amount.
        ({}, [("click_id", "a"), ("payout", "-0")], False),
        ({}, [("click_id", "a"), ("payout", "-0.00")], False),
        ({}, [("click_id", "a"), ("payout", "12.50")], False),
    ],
)
def test_negative_amount_matrix(
    settings_doc: dict[str, Any], params: list[tuple[str, str]], flagged: bool
) -> None:
    verdict = run(settings_doc, params)
    assert names(verdict) == (["negative_amount"] if flagged else [])
    amount = next(value for name, value in params if name in ("payout", "sum"))
    # Stored as sent, flagged or not: reconciliation compares it with the report.
    assert verdict.amount == Decimal(amount)


def test_negative_amount_flag_names_param_value_and_status() -> None:
    verdict = run({}, [("click_id", "a"), ("payout", " -12.50 "), ("status", "sale")])
    (flag,) = verdict.flags
    assert (flag["flag"], flag["param"], flag["value"], flag["status"]) == (
        "negative_amount", "payout", "-12.50", "sale",
    )  # fmt: skip
    assert flag["message"] == (
        'Amount parameter payout is "-12.50", a negative amount on a hit with status sale '
        '("sale"); only a reversal (refund, chargeback) is expected to be negative.'
    )
    assert verdict.amount_param == "payout"


@pytest.mark.parametrize("amount", ["-5.", "--5", "- 5", "-.5", "-1,50", "-$5", "-1e3"])
def test_a_negative_non_decimal_stays_invalid_amount(amount: str) -> None:
    verdict = run({}, [("payout", amount)])
    assert names(verdict) == ["invalid_amount"]
    assert verdict.amount is None


def test_one_flag_per_param_a_macro_beats_the_sign() -> None:
    assert names(run({}, [("payout", "-{payout}")])) == ["unreplaced_macro"]
    required = run({"required_params": ["payout"]}, [("payout", "-5")])
    assert names(required) == ["negative_amount"]


# ------------------------------------------------------------------ the setting


def test_amount_outlier_is_on_by_default_and_can_be_turned_off() -> None:
    assert compile_settings({}).amount_outlier == AmountOutlierRule(Decimal(10), 20, 500)
    assert compile_settings({"amount_outlier": {"off": True}}).amount_outlier is None
    rules = compile_settings({"amount_outlier": {"k": 4.5, "min_samples": 5, "window": 50}})
    assert rules.amount_outlier == AmountOutlierRule(Decimal("4.5"), 5, 50)
    assert rules.document["amount_outlier"] == {
        "k": 4.5, "min_samples": 5, "window": 50, "off": False,
    }  # fmt: skip
    endpoint = compile_endpoint_settings({"amount_outlier": {"k": 3}})
    assert endpoint.rules.amount_outlier is not None


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"kk": 3}, "amount_outlier.kk: unknown setting"),
        ({"k": 0}, "amount_outlier.k"),
        ({"k": "10"}, "amount_outlier.k"),
        ({"k": True}, "amount_outlier.k"),
        ({"window": 1}, "amount_outlier.window"),
        ({"window": 2.5}, "amount_outlier.window"),
        ({"min_samples": 0}, "amount_outlier.min_samples"),
        ({"min_samples": 30, "window": 20}, "amount_outlier.min_samples"),
        ({"off": "yes"}, "amount_outlier.off"),
        ([1], "amount_outlier: must be an object"),
    ],
)
def test_a_bad_amount_outlier_setting_is_refused_by_name(raw: Any, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        compile_amount_outlier(raw)
    with pytest.raises(SettingsError, match=named):
        compile_endpoint_settings({"amount_outlier": raw})


# ------------------------------------------------------------------ robust statistics


def amounts(*values: str) -> list[Decimal]:
    return [Decimal(v) for v in values]


def test_the_sample_keeps_the_last_window_amounts_and_their_median_and_mad() -> None:
    sample = AmountSample(5, amounts("1", "100", "9", "10", "11"))
    assert sample.stats() == (Decimal(10), Decimal(1))
    sample.add(Decimal(12))  # the oldest, 1, leaves the window
    assert len(sample) == 5
    assert sample.stats() == (Decimal(11), Decimal(1))
    even = AmountSample(10, amounts("9.50", "10.50"))
    assert even.stats() == (Decimal(10), Decimal("0.50"))
    assert AmountSample(3, amounts("5", "6", "7", "8")).resized(2).stats() == (
        Decimal("7.5"), Decimal("0.5"),
    )  # fmt: skip


def sorted_median(values: list[Decimal]) -> Decimal:
    ordered, middle = sorted(values), len(values) // 2
    return ordered[middle] if len(values) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@given(
    st.lists(st.decimals(-1000, 1000, places=2, allow_nan=False), min_size=1, max_size=60),
    st.integers(2, 40),
)
def test_median_and_mad_equal_those_of_sorting_every_deviation(
    arrived: list[Decimal], window: int
) -> None:
    """The MAD is read from the two sorted runs of deviations, not by sorting them."""
    sample = AmountSample(window, arrived)
    kept = arrived[-window:]
    median = sorted_median(kept)
    assert sample.stats() == (median, sorted_median([abs(x - median) for x in kept]))


def test_the_threshold_is_k_scaled_mads_from_the_median() -> None:
    median, mad, k = Decimal(10), Decimal("0.5"), Decimal(10)
    # k × 1.4826 × MAD = 7.413
    assert not is_outlier(Decimal("17.41"), median, mad, k)
    assert is_outlier(Decimal("17.42"), median, mad, k)
    assert is_outlier(Decimal("2.58"), median, mad, k)
    assert not is_outlier(Decimal("2.59"), median, mad, k)


def test_with_mad_zero_the_threshold_is_k_times_the_median() -> None:
    # A fixed payout: over half the amounts are 10.00, so MAD is 0.
    median, k = Decimal(10), Decimal(10)
    assert not is_outlier(Decimal(110), median, Decimal(0), k)
    assert is_outlier(Decimal("110.01"), median, Decimal(0), k)
    assert not is_outlier(Decimal(0), median, Decimal(0), k)
    # Free leads (median 0, MAD 0): no scale, nothing is far.
    assert not is_outlier(Decimal(500), Decimal(0), Decimal(0), k)


def test_nothing_is_flagged_before_min_samples_are_known() -> None:
    rule = AmountOutlierRule(Decimal(10), 20, 500)
    sample = AmountSample(500, [Decimal("10.00")] * 19)
    assert outlier_flag(sample, rule, Decimal(500), "USD", "sale", "payout") is None
    sample.add(Decimal("10.00"))
    assert outlier_flag(sample, rule, Decimal(500), "USD", "sale", "payout") is not None


def test_the_outlier_flag_carries_median_mad_currency_and_event() -> None:
    rule = AmountOutlierRule(Decimal(10), 20, 500)
    sample = AmountSample(500, amounts(*(["9.40", "9.50", "9.60"] * 10)))
    assert outlier_flag(sample, rule, Decimal("9.90"), "USD", "sale", "payout") is None
    flag = outlier_flag(sample, rule, Decimal("950.00"), "USD", "sale", "payout")
    assert flag == {
        "flag": "amount_outlier",
        "param": "payout",
        "value": "950.00",
        "message": "Amount 950.00 USD is far from this endpoint's usual 9.50 USD for event "
        "sale (median of the last 30).",
        "median": "9.50",
        "mad": "0.10",
        "currency": "USD",
        "event": "sale",
        "samples": 30,
    }
    bare = outlier_flag(sample, rule, Decimal("0.005"), None, None, "payout")
    assert bare is not None
    assert bare["message"] == (
        "Amount 0.005 is far from this endpoint's usual 9.50 (median of the last 30)."
    )
