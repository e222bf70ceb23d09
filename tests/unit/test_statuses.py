"""Statuses: each platform's real values normalise into the common vocabulary, through
judge with the platform's preset (or the common names), and the ``statuses`` setting."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.model.errors import SettingsError
from monitor.rules import compile_settings, judge
from monitor.rules.params import parse_query
from monitor.rules.presets import load_presets
from monitor.rules.statuses import COMMON, STATUSES


def status_of(settings: dict[str, Any], query: str) -> tuple[str | None, str | None]:
    verdict = judge(
        compile_settings(settings), parse_query(query.encode()), remote_ip=None, headers=[]
    )
    return verdict.status, verdict.status_param


# (settings, query as the platform sends it, status, param it was read from)
CASES = [
    # Binom: cnv_status is free text set by the network (docs.binom.org postback-url).
    ({"preset": "binom"}, "cnv_id=6756e6c7&payout=0.85&cnv_status=approved", "approved"),
    ({"preset": "binom"}, "cnv_id=6756e6c7&cnv_status=Hold", "pending"),
    ({"preset": "binom"}, "cnv_id=6756e6c7&cnv_status=reject", "rejected"),
    ({"preset": "binom"}, "cnv_id=6756e6c7&cnv_status=signup", "lead"),
    ({"preset": "binom"}, "cnv_id=6756e6c7&cnv_status=upsell", None),
    # Keitaro: status lead/sale/rejected/rebill, test and ping ignored.
    ({"preset": "keitaro"}, "subid=593099d6&status=sale&payout=10&tid=2", "sale"),
    ({"preset": "keitaro"}, "subid=593099d6&status=lead", "lead"),
    ({"preset": "keitaro"}, "subid=593099d6&status=rejected&payout=0", "rejected"),
    ({"preset": "keitaro"}, "subid=593099d6&status=rebill&tid=3", "rebill"),
    ({"preset": "keitaro"}, "subid=593099d6&status=ping&ignore_status=ping,test", "test"),
    ({"preset": "keitaro"}, "subid=593099d6&status=+SALE+", "sale"),
    # Affise: 1 approved, 2 pending, 3 declined, 4 not found, 5 hold.
    (
        {"preset": "affise"},
        "click_id=91a2bab7&action_id=A-551&goal=1&status=1&sum=0.50",
        "approved",
    ),
    ({"preset": "affise"}, "click_id=91a2bab7&goal=1&status=2", "pending"),
    ({"preset": "affise"}, "click_id=91a2bab7&goal=1&status=3", "rejected"),
    ({"preset": "affise"}, "click_id=91a2bab7&goal=1&status=4", "rejected"),
    ({"preset": "affise"}, "click_id=91a2bab7&goal=1&status=5", "pending"),
    ({"preset": "affise"}, "click_id=91a2bab7&goal=1&status=9", None),
    # Scaleo: conv_status approved/pending/rejected/trash, hold.
    ({"preset": "scaleo"}, "click_id=5670663e&goal=1&payout=1&conv_status=approved", "approved"),
    ({"preset": "scaleo"}, "click_id=5670663e&goal=1&conv_status=trash", "rejected"),
    ({"preset": "scaleo"}, "click_id=5670663e&goal=1&conv_status=hold", "pending"),
    ({"preset": "scaleo"}, "click_id=5670663e&goal=deposit&conv_status=pending", "pending"),
    # ClickBank INS / affiliate postback transactionType (no preset: common names).
    ({}, "click_id=CBX1&transactionType=SALE&receipt=TJV2LTNE", "sale"),
    ({}, "click_id=CBX1&transactionType=RFND&receipt=TJV2LTNE", "reversal"),
    ({}, "click_id=CBX1&transactionType=CGBK&receipt=TJV2LTNE", "reversal"),
    ({}, "click_id=CBX1&transactionType=INSF", "rejected"),
    ({}, "click_id=CBX1&transactionType=BILL", "rebill"),
    ({}, "click_id=CBX1&transactionType=TEST_SALE", "test"),
    ({}, "click_id=CBX1&transactionType=TEST_RFND", "test"),
    ({}, "click_id=CBX1&transactionType=TEST", "test"),
    ({}, "click_id=CBX1&transactionType=CANCEL-REBILL", None),
    # RedTrack: its own status (approved/pending/declined/other) or the conversion type.
    ({"preset": "redtrack"}, "clickid=46a7390b&sum=3.20&type=Purchase", "sale"),
    ({"preset": "redtrack"}, "clickid=46a7390b&sum=-5&type=Refund", "reversal"),
    ({"preset": "redtrack"}, "clickid=46a7390b&type=Lead", "lead"),
    ({"preset": "redtrack"}, "clickid=46a7390b&type=Purchase&status=declined", "rejected"),
    ({"preset": "redtrack"}, "clickid=46a7390b&type=Upsell", None),
    # Everflow: the partner postback's {event_name}; its statuses approved/rejected/invalid.
    ({"preset": "everflow"}, "click_id=fe37d371&event=Purchase&payout=4.50", "sale"),
    ({"preset": "everflow"}, "click_id=fe37d371&event=Registration", "lead"),
    ({"preset": "everflow"}, "click_id=fe37d371&event=Chargeback", "reversal"),
    ({"preset": "everflow"}, "click_id=fe37d371&event=invalid", "rejected"),
    # Generic names.
    ({"preset": "generic"}, "click_id=ac879502&event=lead&payout=1", "lead"),
    ({"preset": "generic"}, "click_id=ac879502&event=FTD", "sale"),
    ({"preset": "generic"}, "click_id=ac879502&event=deposit", "sale"),
    ({"preset": "generic"}, "click_id=ac879502&status=confirmed", "approved"),
    ({"preset": "generic"}, "click_id=ac879502&status=cancelled", "rejected"),
    ({"preset": "generic"}, "click_id=ac879502&status=refunded", "reversal"),
    ({"preset": "generic"}, "click_id=ac879502&status=void", "reversal"),
    ({"preset": "generic"}, "click_id=ac879502&status=recurring", "rebill"),
    ({}, "cid=ac879502&status=on_hold", "pending"),
    ({}, "cid=ac879502&event=signup", "lead"),
    ({}, "cid=ac879502&et=purchase", "sale"),
    ({}, "cid=ac879502&payout=1", None),
]


@pytest.mark.parametrize(("settings", "query", "status"), CASES, ids=[c[1] for c in CASES])
def test_platform_values_normalise(settings: dict[str, Any], query: str, status: str) -> None:
    assert status_of(settings, query)[0] == status


def test_the_first_param_with_a_known_value_wins() -> None:
    # An unknown status does not hide the event's known value.
    assert status_of({}, "cid=a&status=7&event=sale") == ("sale", "event")
    assert status_of({}, "cid=a&status=refund&event=sale") == ("reversal", "status")
    assert status_of({}, "cid=a&status=7") == (None, "status")
    assert status_of({}, "cid=a") == (None, None)


def test_every_common_value_is_a_known_status() -> None:
    assert set(COMMON.values()) == set(STATUSES)
    assert all(key == key.strip().lower() for key in COMMON)


def test_the_statuses_setting_adds_and_overrides_values() -> None:
    settings = {"preset": "affise", "statuses": {"map": {"2": "approved", " Paid ": "sale"}}}
    assert status_of(settings, "click_id=a&status=2") == ("approved", "status")
    assert status_of(settings, "click_id=a&status=PAID") == ("sale", "status")
    assert status_of(settings, "click_id=a&status=3") == ("rejected", "status")  # the preset's
    own = {"statuses": {"param": "state", "map": {"ok": "approved"}}}
    assert status_of(own, "cid=a&state=ok&status=refund") == ("approved", "state")
    assert status_of(own, "cid=a&status=refund") == (None, None)
    rules = compile_settings({"statuses": {"param": " state ", "map": {" OK ": "Approved"}}})
    assert rules.document["statuses"] == {"param": "state", "map": {"ok": "approved"}}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("paid", "statuses: must be an object"),
        ({"parm": "x"}, "statuses.parm: unknown setting; did you mean param?"),
        ({"param": ""}, "statuses.param"),
        ({"map": ["paid"]}, "statuses.map: must be an object"),
        (
            {"map": {"paid": "approve"}},
            "statuses.map.paid: unknown status 'approve'; did you mean approved?",
        ),
        ({"map": {"x": 1}}, "statuses.map.x: unknown status"),
        ({"map": {" ": "sale"}}, "statuses.map: a value must be"),
    ],
)
def test_a_bad_statuses_setting_is_refused_by_name(value: Any, named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        compile_settings({"statuses": value})
    assert named in str(caught.value)


def test_a_preset_with_an_unknown_status_is_refused_at_load() -> None:
    entry = """
[demo]
name = "Demo"
direction = "sender"
click_id_param = "click_id"
required_params = ["click_id"]
template = "click_id={click_id}"
method = "GET"
notes = "A test preset."
status_params = ["state"]
statuses = { "9" = "refunded" }
"""
    with pytest.raises(ValueError, match=r"\[demo\]: statuses.9: unknown status"):
        load_presets(entry)


def test_lead_and_sale_of_one_click_are_different_dedupe_keys_for_every_preset() -> None:
    # Where the status has a param of its own (Affise, Scaleo, RedTrack's status), it
    # is part of the key, so the approval of a pending conversion is no duplicate.
    for settings, first, second in [
        ({"preset": "keitaro"}, "subid=a&status=lead", "subid=a&status=sale"),
        ({"preset": "binom"}, "cnv_id=a&cnv_status=lead", "cnv_id=a&cnv_status=sale"),
        ({"preset": "redtrack"}, "clickid=a&type=Lead", "clickid=a&type=Purchase"),
        ({"preset": "everflow"}, "click_id=a&event=lead", "click_id=a&event=sale"),
        ({"preset": "generic"}, "click_id=a&event=lead", "click_id=a&event=sale"),
        ({"preset": "voluum"}, "cid=a&et=lead", "cid=a&et=sale"),
        ({"preset": "affise"}, "click_id=a&goal=1&status=2", "click_id=a&goal=1&status=1"),
        ({"preset": "scaleo"}, "click_id=a&goal=1&conv_status=pending",
         "click_id=a&goal=1&conv_status=approved"),
        ({"preset": "redtrack"}, "clickid=a&type=Purchase&status=pending",
         "clickid=a&type=Purchase&status=approved"),
        ({}, "click_id=a&transactionType=SALE", "click_id=a&transactionType=RFND"),
        ({"preset": "cake"}, "click_id=a&status=lead", "click_id=a&status=sale"),
        ({"preset": "tune"}, "click_id=a&status=lead", "click_id=a&status=sale"),
    ]:  # fmt: skip
        rules = compile_settings(settings)
        keys = [
            judge(rules, parse_query(q.encode()), remote_ip=None, headers=[]).dedupe_key
            for q in (first, second)
        ]
        assert keys[0] is not None and keys[0] != keys[1], (settings, keys)
    # The same status twice is still a duplicate.
    rules = compile_settings({"preset": "affise"})
    again = [
        judge(rules, parse_query(b"click_id=a&goal=1&status=1"), remote_ip=None, headers=[])
        for _ in range(2)
    ]
    assert again[0].dedupe_key == again[1].dedupe_key == ("a", "1|1")


def test_status_tracked_needs_a_real_click_id_and_no_test() -> None:
    rules = compile_settings({"preset": "keitaro"})

    def tracked(query: str) -> bool:
        return judge(rules, parse_query(query.encode()), remote_ip=None, headers=[]).status_tracked

    assert tracked("subid=abc&status=sale")
    assert not tracked("subid={subid}&status=sale")
    assert not tracked("subid=&status=sale")
    assert not tracked("subid=abc&status=test")
    assert not tracked("subid=abc&status=upsell")
