"""The pure part of unknown senders: networks, shapes, the setting and the flags."""

from __future__ import annotations

import pytest

from monitor.model.errors import SettingsError
from monitor.rules.compiler import compile_settings
from monitor.rules.senders import (
    MAX_SHAPE_NAMES,
    SendersRule,
    compile_senders,
    learning_over,
    network_of,
    param_shape,
    shape_changed_flag,
    shape_hash,
)
from monitor.storage.sender_store import parse_network


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("198.51.100.77", "198.51.100.0/24"),
        ("::ffff:198.51.100.77", "198.51.100.0/24"),  # IPv4-mapped counts as IPv4
        ("2001:db8:1:2::1", "2001:db8:1::/48"),
        ("fe80::1%eth0", "fe80::/48"),
        ("not an ip", None),
        ("", None),
        (None, None),
    ],
)
def test_network_of(address: str | None, network: str | None) -> None:
    assert network_of(address) == network


def test_parse_network_narrows_to_the_learned_prefix() -> None:
    assert parse_network("203.0.113.9") == "203.0.113.0/24"
    assert parse_network(" 203.0.113.0/24 ") == "203.0.113.0/24"
    assert parse_network("2001:db8::/32") == "2001:db8::/48"
    assert parse_network("nope") is None


def test_shape_is_the_sorted_set_of_names_capped() -> None:
    assert param_shape([("payout", "1"), ("click_id", ""), ("payout", "2")]) == (
        "click_id",
        "payout",
    )
    many = [(f"p{i:03}", "x") for i in range(80)]
    assert len(param_shape(many)) == MAX_SHAPE_NAMES
    assert shape_hash(("a", "b")) != shape_hash(("ab",))


def test_settings_defaults_switches_and_errors() -> None:
    assert compile_settings({}).senders == SendersRule(50, 7, True, True)
    rule, document = compile_senders({"learn_hits": 10, "new_sender": False})
    assert rule == SendersRule(10, 7, False, True)
    assert document == {
        "learn_hits": 10, "learn_days": 7, "new_sender": False, "param_shape_changed": True,
    }  # fmt: skip
    both_off = compile_settings({"senders": {"new_sender": False, "param_shape_changed": False}})
    assert both_off.senders is None
    for bad, key in (
        ({"learn_hit": 1}, "senders.learn_hit"),
        ({"learn_hits": -1}, "senders.learn_hits"),
        ({"learn_days": True}, "senders.learn_days"),
        ({"param_shape_changed": 1}, "senders.param_shape_changed"),
        ([], "senders:"),
    ):
        with pytest.raises(SettingsError, match=key):
            compile_settings({"senders": bad})


def test_learning_ends_at_either_limit() -> None:
    rule = SendersRule(learn_hits=50, learn_days=7)
    assert not learning_over(rule, 0, None)
    assert not learning_over(rule, 49, 6.9)
    assert learning_over(rule, 50, 0.1)
    assert learning_over(rule, 3, 7.0)


def test_shape_changed_names_added_and_removed() -> None:
    flag = shape_changed_flag(("amount", "click_id"), ("click_id", "payout"))
    assert flag["flag"] == "param_shape_changed" and flag["param"] == "amount"
    assert flag["added"] == ["amount"] and flag["removed"] == ["payout"]
    assert "added amount; missing payout" in flag["message"]
    assert shape_changed_flag(("a",), None)["removed"] == []
