"""Test and ping postbacks as pure rules: each platform's marker with the values it
really sends, the endpoint's own test click ids and IP ranges, and the setting's
validation. (Through capture, the ledger, stats, metrics and reconciliation:
tests/integration/test_test_traffic.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.model.errors import SettingsError
from monitor.model.verdict import FLAG_NAMES, TEST_TRAFFIC, Verdict
from monitor.rules import compile_settings, judge
from monitor.rules.endpoint_settings import compile_endpoint_settings
from monitor.rules.params import parse_body, parse_query
from monitor.rules.test_traffic import COMMON_MARKERS, LEFT_OUT


def run(
    settings_doc: dict[str, Any],
    query: str = "",
    *,
    body: str = "",
    content_type: str = "",
    remote_ip: str | None = "203.0.113.7",
) -> Verdict:
    """Judged as capture judges: the raw query and body parsed, then the rules."""
    params = parse_query(query.encode("ascii"))
    params += parse_body(content_type, body.encode("utf-8"))
    return judge(compile_settings(settings_doc), params, remote_ip=remote_ip, headers=[])


def marker_flag(verdict: Verdict) -> dict[str, Any] | None:
    found = [flag for flag in verdict.flags if flag["flag"] == TEST_TRAFFIC]
    assert len(found) <= 1, verdict.flags  # at most one per hit
    return found[0] if found else None


def test_the_flag_is_a_known_flag_name() -> None:
    assert TEST_TRAFFIC == "test_traffic" and TEST_TRAFFIC in FLAG_NAMES


# ------------------------------------------------------------------ platform markers


@pytest.mark.parametrize(
    ("settings_doc", "query", "param", "value", "source"),
    [
        # Keitaro: a test and a ping, as its postback URL sends them.
        ({"preset": "keitaro"}, "subid=38e2013ec8dd681e25ab&status=test&payout=0",
         "status", "test", "Keitaro"),
        ({"preset": "keitaro"}, "subid=38e2013ec8dd681e25ab&status=ping&ignore_status=ping,test",
         "status", "ping", "Keitaro"),
        ({}, "subid=38e2013ec8dd681e25ab&status=PING", "status", "PING", "Keitaro"),
        # CAKE: ckm_test=1 on the post string.
        ({"preset": "cake"}, "click_id=183c38350196fe579180&payout=0&ckm_test=1",
         "ckm_test", "1", "CAKE"),
        # ClickBank: a decrypted INS notification relayed as a form.
        ({}, "transactionType=TEST_SALE&receipt=********&totalAccountAmount=1.00",
         "transactionType", "TEST_SALE", "ClickBank"),
        ({}, "transactionType=TEST_RFND&receipt=********", "transactionType", "TEST_RFND",
         "ClickBank"),
        ({}, "transactionType=TEST_BILL&receipt=********", "transactionType", "TEST_BILL",
         "ClickBank"),
        ({}, "transactionType=TEST&receipt=********", "transactionType", "TEST", "ClickBank"),
        # Generic markers.
        ({}, "click_id=9f1c2e7a&test=1", "test", "1", "common"),
        ({}, "click_id=9f1c2e7a&test=true", "test", "true", "common"),
        ({}, "click_id=9f1c2e7a&test=YES", "test", "YES", "common"),
        ({}, "click_id=9f1c2e7a&is_test=1", "is_test", "1", "common"),
        ({}, "click_id=9f1c2e7a&is_test=True", "is_test", "True", "common"),
        ({}, "click_id=9f1c2e7a&test=+1+", "test", "1", "common"),  # trimmed
    ],
)  # fmt: skip
def test_platform_markers_flag_the_hit(
    settings_doc: dict[str, Any], query: str, param: str, value: str, source: str
) -> None:
    flag = marker_flag(run(settings_doc, query))
    assert flag is not None
    assert (flag["param"], flag["value"], flag["source"]) == (param, value, source)
    assert flag["message"].startswith(f'Parameter {param} is "{value}", which marks a test')
    assert flag["message"].endswith(LEFT_OUT)


def test_a_clickbank_test_in_a_json_body() -> None:
    body = json.dumps({"transactionType": "TEST_SALE", "receipt": "********", "version": 8.0})
    flag = marker_flag(run({}, body=body, content_type="application/json"))
    assert flag is not None and flag["value"] == "TEST_SALE"


def test_a_json_true_is_a_test() -> None:
    body = '{"click_id": "14c22c51099412fea5dd", "payout": 0, "test": true}'
    flag = marker_flag(run({}, body=body, content_type="application/json"))
    assert flag is not None and (flag["param"], flag["value"]) == ("test", "true")


@pytest.mark.parametrize(
    "query",
    [
        "subid=38e2013ec8dd681e25ab&status=sale&payout=12.50",
        "subid=38e2013ec8dd681e25ab&status=lead",
        "subid=38e2013ec8dd681e25ab&status=rejected",
        "click_id=abc&status=1",  # Affise: approved
        "transactionType=SALE&receipt=ABCD1234",
        "transactionType=RFND&receipt=ABCD1234",
        "transactionType=CANCEL-REBILL&receipt=ABCD1234",
        "click_id=abc&ckm_test=0",
        "click_id=abc&test=0",
        "click_id=abc&test=false",
        "click_id=abc&test=",
        "click_id=abc&test={test}",
        "click_id=abc&is_test=no",
        "click_id=abc&is_test=yes",  # not in is_test's list
        "cid=ec19d11c85842019055f&email=john.doe%2Btest%40example.com",
        "click_id=test&event=test",  # a click id or event named test is no marker
        "click_id=abc&sub1=test&aff_sub=ping",
        "click_id=abc&Test=1&STATUS=test",  # names are case-sensitive, as everywhere
    ],
)
def test_real_postbacks_are_not_test_traffic(query: str) -> None:
    assert marker_flag(run({}, query)) is None


def test_the_first_occurrence_of_a_marker_wins() -> None:
    assert marker_flag(run({}, "click_id=a&test=0&test=1")) is None
    assert marker_flag(run({}, "click_id=a&test=1&test=0")) is not None


def test_the_flag_comes_beside_other_flags() -> None:
    verdict = run({"preset": "keitaro"}, "subid={subid}&status=test&payout=1,50")
    assert sorted(f["flag"] for f in verdict.flags) == [
        "invalid_amount", "test_traffic", "unreplaced_macro",
    ]  # fmt: skip


def test_the_verdict_is_otherwise_unchanged() -> None:
    """The dedupe key is still judged: the writer, not judge, keeps tests out of it."""
    verdict = run({}, "click_id=c1&event=sale&test=1&payout=2")
    assert verdict.dedupe_key == ("c1", "sale")
    assert str(verdict.amount) == "2"


# ------------------------------------------------------------------ endpoint settings


def test_configured_test_click_ids() -> None:
    settings_doc = {"preset": "voluum", "test_traffic": {"click_ids": [" pb-test-0001 "]}}
    flag = marker_flag(run(settings_doc, "cid=pb-test-0001&payout=1.00"))
    assert flag is not None
    assert (flag["param"], flag["value"], flag["source"]) == (
        "cid", "pb-test-0001", "test_traffic.click_ids",
    )  # fmt: skip
    assert "test click ids (test_traffic.click_ids)" in flag["message"]
    assert marker_flag(run(settings_doc, "cid=pb-test-0002&payout=1.00")) is None
    assert marker_flag(run(settings_doc, "cid=PB-TEST-0001")) is None  # click ids are exact


@pytest.mark.parametrize(
    ("remote_ip", "network"),
    [
        ("203.0.113.5", "203.0.113.0/24"),
        ("203.0.113.255", "203.0.113.0/24"),
        ("::ffff:203.0.113.9", "203.0.113.0/24"),  # IPv4-mapped IPv6
        ("198.51.100.7", "198.51.100.7/32"),
        ("2001:db8:7e57::1", "2001:db8:7e57::/48"),
        ("2001:db8:7e57:ffff::42", "2001:db8:7e57::/48"),
        ("203.0.114.1", None),
        ("2001:db8:7e58::1", None),
        ("10.1.2.3", None),
        ("not an address", None),
        (None, None),
    ],
)
def test_configured_test_ip_ranges_v4_and_v6(remote_ip: str | None, network: str | None) -> None:
    settings_doc = {
        "test_traffic": {"ip_ranges": ["203.0.113.0/24", "198.51.100.7", "2001:db8:7e57::/48"]}
    }
    flag = marker_flag(run(settings_doc, "click_id=7d3f9a0c", remote_ip=remote_ip))
    if network is None:
        assert flag is None
        return
    assert flag is not None
    assert (flag["param"], flag["source"], flag["network"]) == (
        None, "test_traffic.ip_ranges", network,
    )  # fmt: skip
    assert f"in this endpoint's test IP range {network}" in flag["message"]


def test_off_turns_every_marker_off() -> None:
    settings_doc = {
        "test_traffic": {"off": True, "click_ids": ["t1"], "ip_ranges": ["203.0.113.0/24"]}
    }
    assert marker_flag(run(settings_doc, "click_id=t1&test=1&status=ping")) is None
    assert marker_flag(run({"test_traffic": {"off": False}}, "click_id=a&test=1")) is not None


def test_a_marker_comes_before_a_click_id_and_an_ip_range() -> None:
    settings_doc = {"test_traffic": {"click_ids": ["t1"], "ip_ranges": ["203.0.113.0/24"]}}
    flag = marker_flag(run(settings_doc, "click_id=t1&ckm_test=1", remote_ip="203.0.113.1"))
    assert flag is not None and flag["source"] == "CAKE"
    flag = marker_flag(run(settings_doc, "click_id=t1", remote_ip="203.0.113.1"))
    assert flag is not None and flag["source"] == "test_traffic.click_ids"


def test_the_setting_is_normalized_and_stored() -> None:
    settings = compile_endpoint_settings(
        {"test_traffic": {"click_ids": [" a ", "b", "a"], "ip_ranges": [" 203.0.113.0/24"]}}
    )
    assert settings.document == {
        "test_traffic": {"click_ids": ["a", "b"], "ip_ranges": ["203.0.113.0/24"]}
    }
    assert compile_endpoint_settings({"test_traffic": None}).document == {}
    assert compile_endpoint_settings({"test_traffic": {}}).document == {"test_traffic": {}}


def test_presets_bring_their_markers_without_repeating_the_common_ones() -> None:
    for preset in ("keitaro", "cake", "voluum"):
        assert compile_settings({"preset": preset}).test_traffic.markers == COMMON_MARKERS


@pytest.mark.parametrize(
    ("settings_doc", "message"),
    [
        ({"test_traffic": ["t1"]}, "test_traffic: must be an object"),
        ({"test_traffic": {"clickids": ["t1"]}},
         "test_traffic.clickids: unknown setting; did you mean click_ids?"),
        ({"test_traffic": {"ranges": []}}, "test_traffic.ranges: unknown setting"),
        ({"test_traffic": {"off": "yes"}}, "test_traffic.off: true or false"),
        ({"test_traffic": {"off": 1}}, "test_traffic.off: true or false"),
        ({"test_traffic": {"click_ids": "t1"}}, "test_traffic.click_ids: must be a list"),
        ({"test_traffic": {"click_ids": ["t1", " "]}},
         "test_traffic.click_ids[1]: must be a non-empty string"),
        ({"test_traffic": {"click_ids": ["t1", 7]}},
         "test_traffic.click_ids[1]: must be a non-empty string"),
        ({"test_traffic": {"click_ids": ["x" * 257]}},
         "test_traffic.click_ids[0]: longer than 256 characters"),
        ({"test_traffic": {"click_ids": [f"t{n}" for n in range(1001)]}},
         "test_traffic.click_ids: at most 1000"),
        ({"test_traffic": {"ip_ranges": "203.0.113.0/24"}},
         "test_traffic.ip_ranges: must be a list of IP addresses or CIDR networks"),
        ({"test_traffic": {"ip_ranges": ["203.0.113.0/24", "203.0.113.0/33"]}},
         "test_traffic.ip_ranges[1]: '203.0.113.0/33' is not an IP address or CIDR network"),
        ({"test_traffic": {"ip_ranges": ["203.0.113.9/24"]}},
         "test_traffic.ip_ranges[0]: '203.0.113.9/24' has host bits set; "
         "did you mean 203.0.113.0/24?"),
        ({"test_traffic": {"ip_ranges": ["2001:db8:7e57::1/48"]}},
         "test_traffic.ip_ranges[0]: '2001:db8:7e57::1/48' has host bits set; "
         "did you mean 2001:db8:7e57::/48?"),
        ({"test_traffic": {"ip_ranges": ["office"]}},
         "test_traffic.ip_ranges[0]: 'office' is not an IP address"),
        ({"testtraffic": {}}, "testtraffic: unknown setting"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_key(settings_doc: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        compile_endpoint_settings(settings_doc)
    assert message in str(caught.value)
