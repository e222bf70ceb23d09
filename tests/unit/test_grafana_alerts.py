"""dashboards/provisioning/alerting/: the Grafana-managed rules are the twins of
alerts.yml's, match the grafana-foundation-sdk's models, query the provisioned data
source, and the example contact point and policy stay off until uncommented.

Pure file checks; tests/system/test_dashboards.py runs every Grafana query against a
real Prometheus, tests/system/test_dashboards_build.py rebuilds the files."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.models import alerting as model

from tests.helpers.grafana_rules import (
    ALERTING,
    DASHBOARDS,
    EXPR_UID,
    NOTIFICATIONS,
    RULE_GROUP_JSON,
    dashboards_module,
    grafana_groups,
    grafana_rules,
    prometheus_rules,
)

OPS = {"gt": ">", "lt": "<"}
VALUE = re.compile(r"\$value\b(?!s)")
MATCHING = re.compile(r"on\([\w,]+\)group_left")


def squash(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def inlined(expr: str, records: dict[str, str]) -> str:
    """alerts.yml's expression with its recording rules written out, as Grafana,
    which reads no rule file, must query them."""
    for name, record in records.items():
        expr = re.sub(rf"{re.escape(name)}(?![\w:])", lambda _, r=record: f"({r})", expr)
    return expr


def balanced(expr: str) -> bool:
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def twins() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    alerts = {r["alert"]: r for r in prometheus_rules() if "alert" in r}
    rules = {r["title"]: r for r in grafana_rules()}
    assert set(rules) == set(alerts)
    return [(rules[name], alerts[name]) for name in alerts]


def by_ref(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {query["refId"]: query for query in rule["data"]}


def test_every_grafana_rule_has_its_prometheus_twin_with_the_same_condition() -> None:
    records = {r["record"]: r["expr"] for r in prometheus_rules() if "record" in r}
    pairs = twins()
    assert len(pairs) == 12  # every rule of alert_rules.py, in both formats
    for rule, alert in pairs:
        name = rule["title"]
        prom = squash(inlined(alert["expr"], records))
        queries = by_ref(rule)
        condition = queries[rule["condition"]]["model"]
        a = squash(queries["A"]["model"]["expr"])
        m = re.fullmatch(r"\$A (\S+) (\$B|[-+.\de]+)", condition.get("expression", ""))
        if condition["type"] == "threshold":
            assert condition["expression"] == "A", name
            (evaluator,) = [c["evaluator"] for c in condition["conditions"]]
            comparison = f"{OPS[evaluator['type']]}{evaluator['params'][0]:g}"
        elif m and m[2] == "$B":
            # A per-series threshold: Grafana compares $A > $B, joined on their labels.
            assert condition["type"] == "math", name
            b = squash(queries["B"]["model"]["expr"])
            assert prom.startswith(a + m[1]) and prom.endswith(b), name
            assert MATCHING.fullmatch(prom[len(a) + len(m[1]) : len(prom) - len(b)]), name
            comparison = ""
        else:
            assert condition["type"] == "math" and m, name
            comparison = f"{m[1]}{m[2]}"
        if comparison:
            # alerts.yml says `value op limit guard`, Grafana queries `value guard`:
            # the comparison goes in at the top level, before the guard's `and`.
            splits = [i for i in range(len(a) + 1) if a[:i] + comparison + a[i:] == prom]
            assert splits, f"{name}: {prom} is not A with {comparison}"
            (i,) = splits
            assert balanced(a[:i]) and (a[i:] == "" or a[i:].startswith("andon(")), name
            assert not re.search(r"\b(or|unless|and)\b", re.sub(r"\(.*\)", "", a[:i])), name
        assert rule["for"] == alert.get("for", "0s"), name
        assert rule["labels"] == alert["labels"], name
        expected = {k: VALUE.sub("$values.A.Value", v) for k, v in alert["annotations"].items()}
        assert rule["annotations"] == expected, name


def test_threshold_expressions_use_what_grafana_10_and_11_know() -> None:
    # gte, lte, eq and ne came with Grafana 11.6: before, such a rule fails to load.
    for rule in grafana_rules():
        for query in rule["data"]:
            for condition in query["model"].get("conditions", []):
                assert condition["evaluator"]["type"] in {"gt", "lt"}, rule["title"]


def test_grafana_rules_say_which_endpoint_and_link_to_its_page() -> None:
    for rule, alert in twins():
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["title"]
        for text in notes.values():
            assert not VALUE.search(text), f"{rule['title']}: $value means every query in Grafana"
        if "endpoint" in alert["expr"]:
            assert "{{ $labels.name }}" in notes["summary"], rule["title"]
            assert notes["endpoint_url"] == "{{ $labels.url }}", rule["title"]


def test_grafana_rules_query_the_provisioned_prometheus_without_recording_rules() -> None:
    source = yaml.safe_load((DASHBOARDS / "provisioning/datasources/prometheus.yaml").read_text())
    uid = source["datasources"][0]["uid"]
    (group,) = grafana_groups()
    assert group["folder"] == "Postback Monitor" and group["interval"] == "1m"
    uids = [rule["uid"] for rule in group["rules"]]
    assert len(set(uids)) == len(uids) and all(re.fullmatch(r"[a-z-]{1,40}", u) for u in uids)
    for rule in group["rules"]:
        queries = by_ref(rule)
        assert list(queries)[-1] == rule["condition"], rule["title"]
        for ref, query in queries.items():
            if query["datasourceUid"] == EXPR_UID:
                assert query["model"]["datasource"] == {"type": EXPR_UID, "uid": EXPR_UID}
                refs = re.findall(r"\$(\w+)", query["model"]["expression"]) or [
                    query["model"]["expression"]
                ]
                assert set(refs) <= set(queries) - {ref}, rule["title"]
                continue
            assert query["datasourceUid"] == uid, rule["title"]
            assert query["model"]["datasource"] == {"type": "prometheus", "uid": uid}
            assert query["model"]["instant"] is True
            assert query["relativeTimeRange"]["from"] > 0
            # Grafana's Prometheus need not load alerts.yml.
            assert ":" not in re.sub(r"\[[^]]*\]", "", query["model"]["expr"]), rule["title"]


@pytest.mark.parametrize(
    ("title", "states"),
    [
        # An endpoint that is not seen at all is no reason to go quiet.
        ("PostbackEndpointSilent", {"NoData", "Alerting"}),
        # The spool's gauge is always exported: nothing means the service is not seen.
        ("PostbackSpoolNotDraining", {"NoData", "Alerting"}),
        ("PostbackWriterBacklog", {"NoData", "Alerting"}),
        # No `up` series for the job at all: Prometheus does not scrape the service.
        ("PostbackMonitorDown", {"Alerting"}),
        # No traffic, forwards or runs: nothing to alert on.
        ("PostbackDuplicateRateHigh", {"OK"}),
        ("PostbackUnreplacedMacros", {"OK"}),
        ("PostbackForwardsFailed", {"OK"}),
    ],
)
def test_no_data_states_are_chosen_per_rule(title: str, states: set[str]) -> None:
    rule = next(r for r in grafana_rules() if r["title"] == title)
    assert rule["noDataState"] in states
    assert rule["execErrState"] == "Error"  # a broken query is not the alert itself


def test_provisioning_file_and_json_match_the_sdk_models() -> None:
    grafana_alerting = dashboards_module("grafana_alerting")
    group = json.loads(RULE_GROUP_JSON.read_text())
    # Loaded back through the SDK's models and written out again, nothing is lost or
    # added: every key is one the models know, with the type they expect.
    assert grafana_alerting.plain(model.RuleGroup.from_json(group)) == group
    (file_group,) = grafana_groups()
    assert file_group["name"] == group["title"]
    assert file_group["interval"] == f"{group['interval'] // 60}m"
    assert file_group["orgId"] == 1
    rules = [grafana_alerting.api_rule(rule) for rule in file_group["rules"]]
    for rule in rules:
        assert grafana_alerting.plain(model.Rule.from_json(rule)) == rule, rule["title"]
        assert rule["folderUID"] == group["folderUid"]
    assert rules == group["rules"]


def uncommented(text: str) -> str:
    _, body = text.split("apiVersion: 1\n")
    lines = body.splitlines()
    assert lines and all(line.startswith("# ") for line in lines)
    return "apiVersion: 1\n" + "".join(line[2:] + "\n" for line in lines)


def test_example_contact_point_and_policy_are_off_until_uncommented() -> None:
    grafana_alerting = dashboards_module("grafana_alerting")
    text = NOTIFICATIONS.read_text()
    assert yaml.safe_load(text) == {"apiVersion": 1}  # what Grafana loads as committed
    doc = yaml.safe_load(uncommented(text))
    (point,) = doc["contactPoints"]
    (receiver,) = point["receivers"]
    api_point = {**receiver, "name": point["name"]}
    assert grafana_alerting.plain(model.ContactPoint.from_json(api_point)) == api_point
    assert receiver["settings"]["url"] == "$SLACK_WEBHOOK_URL"  # from the environment
    (policy,) = doc["policies"]
    assert policy.pop("orgId") == point["orgId"] == 1

    def sdk_shape(route: dict[str, Any]) -> dict[str, Any]:
        out = dict(route)
        if "object_matchers" in out:
            out["object_matchers"] = [
                {"Name": n, "Type": t, "Value": v} for n, t, v in out["object_matchers"]
            ]
        out["routes"] = [sdk_shape(r) for r in out.get("routes", [])] or None
        return {k: v for k, v in out.items() if v is not None}

    api_policy = sdk_shape(policy)
    assert grafana_alerting.plain(model.NotificationPolicy.from_json(api_policy)) == api_policy
    assert policy["receiver"] == point["name"]
    (route,) = policy["routes"]
    assert route["receiver"] == point["name"]
    severities = {r["labels"]["severity"] for r in grafana_rules()}
    assert [["severity", "=", "critical"]] == route["object_matchers"]
    assert "critical" in severities


def test_compose_provisions_the_alerting_directory() -> None:
    compose = yaml.safe_load((DASHBOARDS / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    assert "./provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert ALERTING.parent == DASHBOARDS / "provisioning"
    assert sorted(p.name for p in ALERTING.iterdir()) == [
        "notifications.yaml",
        "postback-monitor-rules.yaml",
    ]
    # The example contact point reads its webhook from Grafana's environment.
    assert "SLACK_WEBHOOK_URL" in grafana["environment"]
