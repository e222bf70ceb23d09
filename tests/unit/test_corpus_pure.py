"""The postback corpus through the pure path: params parsing, settings, judge.

tests/data/corpus.json holds realistic postbacks across the platforms. Each entry is
{"name", "settings", "method", "query" (raw, as on the wire), "content_type", "body",
"remote_ip", "headers": [[k, v]], "expected_flags": sorted flag names without
duplicate_click_id}. A live-server test replays the same file, so its shape is checked
here too.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from monitor.model.verdict import Verdict
from monitor.rules import compile_settings, judge
from monitor.rules.outliers import AmountOutlierRule, AmountSample, outlier_flag
from monitor.rules.params import parse_body, parse_query

CORPUS_PATH = Path(__file__).parents[1] / "data" / "corpus.json"
CORPUS: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))
ENTRY_KEYS = {
    "name", "settings", "method", "query", "content_type", "body", "remote_ip", "headers",
    "expected_flags",
}  # fmt: skip
FLAGS = {
    "missing_param", "unreplaced_macro", "invalid_amount", "invalid_currency",
    "ip_not_allowed", "secret_mismatch", "test_traffic", "negative_amount",
}  # fmt: skip
# The corpus entries that are a platform's own test postback (rules.test_traffic);
# every other entry is real traffic and must never be flagged test_traffic.
TEST_POSTBACKS = {
    "keitaro: ignore ping status", "keitaro: test status", "cake: test traffic marker",
    "generic: json boolean and number", "generic: clickbank ins test sale",
    "generic: is_test flag", "generic: configured test click id",
    "voluum: sender in test ip range",
}  # fmt: skip
PLATFORMS = {
    "voluum", "binom", "redtrack", "keitaro", "everflow", "cake", "tune", "affise", "scaleo",
    "propellerads", "appsflyer", "adjust", "generic",
}  # fmt: skip


def verdict_for(entry: dict[str, Any]) -> Verdict:
    params = parse_query(entry["query"].encode("ascii"))
    params += parse_body(entry["content_type"], entry["body"].encode("utf-8"))
    return judge(
        compile_settings(entry["settings"]),
        params,
        remote_ip=entry["remote_ip"],
        headers=[(name, value) for name, value in entry["headers"]],
    )


def flags_for(entry: dict[str, Any]) -> list[str]:
    verdict = verdict_for(entry)
    return sorted(flag["flag"] for flag in verdict.flags if flag["flag"] != "duplicate_click_id")


def test_corpus_amounts_in_order_raise_no_amount_outlier() -> None:
    """The live test sends the corpus to one endpoint per settings document: the writer's
    windows (one per endpoint, event and currency), with the default setting, must find
    no clean amount odd. Judged as the writer does, each against those before it."""
    rule = AmountOutlierRule()
    samples: dict[tuple[str, str, str], AmountSample] = {}
    odd = []
    for entry in CORPUS:
        verdict = verdict_for(entry)
        if verdict.amount is None or verdict.amount < 0 or "test_traffic" in flags_for(entry):
            continue
        key = (json.dumps(entry["settings"]), verdict.event or "", verdict.currency or "")
        sample = samples.setdefault(key, AmountSample(rule.window))
        flag = outlier_flag(sample, rule, verdict.amount, verdict.currency, None, None)
        if flag is not None and not entry["expected_flags"]:
            odd.append((entry["name"], flag["message"]))
        sample.add(verdict.amount)
    assert odd == []


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["name"] for entry in CORPUS])
def test_corpus_entry_gets_exactly_the_expected_flags(entry: dict[str, Any]) -> None:
    assert flags_for(entry) == entry["expected_flags"]


def test_corpus_shape() -> None:
    assert len(CORPUS) >= 150
    names = [entry["name"] for entry in CORPUS]
    assert len(names) == len(set(names))
    for entry in CORPUS:
        assert set(entry) == ENTRY_KEYS, entry["name"]
        assert entry["method"] in ("GET", "POST")
        assert entry["expected_flags"] == sorted(entry["expected_flags"])
        assert set(entry["expected_flags"]) <= FLAGS
        # On the wire: printable ASCII, no space and no fragment.
        assert all(33 <= ord(char) < 127 for char in entry["query"]), entry["name"]
        assert "#" not in entry["query"]
        assert all(len(header) == 2 for header in entry["headers"])
        if entry["method"] == "GET":
            assert entry["body"] == ""


def test_corpus_covers_platforms_methods_bodies_and_flags() -> None:
    assert {entry["name"].split(":")[0] for entry in CORPUS} == PLATFORMS
    kinds = Counter(
        (entry["method"], entry["content_type"] or "none") for entry in CORPUS if entry["body"]
    )
    assert kinds[("POST", "application/json")] >= 10
    assert kinds[("POST", "application/x-www-form-urlencoded")] >= 3
    seen = Counter(flag for entry in CORPUS for flag in entry["expected_flags"])
    assert set(seen) == FLAGS
    assert min(seen.values()) >= 5
    clean = sum(1 for entry in CORPUS if not entry["expected_flags"])
    assert clean >= 60


def test_corpus_click_ids_are_unique_so_replays_never_collide() -> None:
    keys = []
    for entry in CORPUS:
        params = parse_query(entry["query"].encode("ascii"))
        params += parse_body(entry["content_type"], entry["body"].encode("utf-8"))
        verdict = judge(
            compile_settings(entry["settings"]), params, remote_ip=entry["remote_ip"], headers=[]
        )
        if verdict.dedupe_key is not None:
            keys.append(verdict.dedupe_key[0])
    assert len(keys) == len(set(keys))


def test_only_the_corpus_test_postbacks_are_test_traffic() -> None:
    """No false alarms: real postbacks of every platform stay out of test_traffic."""
    flagged = {entry["name"] for entry in CORPUS if "test_traffic" in flags_for(entry)}
    assert flagged == TEST_POSTBACKS
