"""The rules of alert_rules.py as Grafana-managed alert rules, built with the
grafana-foundation-sdk's alerting builders, and an example contact point and
notification policy.

The SDK models Grafana's HTTP provisioning API (a rule group with ``folderUid``, each
rule with ``folderUID``, ``ruleGroup`` and ``orgID``). ``rule_group`` is that, and
build.py writes it as grafana-alert-rules.json for ``PUT
/api/v1/provisioning/folder/{uid}/rule-groups/{group}``. File provisioning
(``apiVersion: 1``) names the folder by title and the group by ``name`` on the
group instead: ``rules_file`` moves those keys, nothing else.

Each rule: refId A is the rule's value (with its guard) as an instant Prometheus
query on the data source of provisioning/datasources/prometheus.yaml; then a
threshold on A (math such as ``$A >= 3`` for comparisons other than > and <),
or, for a per-series threshold, B is that series and C the math ``$A > $B``.
Annotations say ``$values.A.Value`` where the Prometheus rule says ``$value`` (in
Grafana ``$value`` is every query's value in one string).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from alert_rules import ALERTS, Alert, Series, inline, number
from grafana_foundation_sdk.builders import alerting, expr, prometheus
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as alerting_model
from grafana_foundation_sdk.models import dashboard as dashboard_model

DATASOURCE_UID = "postback-monitor-prometheus"  # provisioning/datasources/prometheus.yaml
EXPR_UID = "__expr__"
FOLDER_UID = "postback-monitor"
FOLDER_TITLE = "Postback Monitor"  # the dashboard provider's folder too
GROUP = "postback-monitor"
ORG_ID = 1
# Prometheus evaluates every 15 s (prometheus.yml); Grafana's rules query it, so
# once a minute is plenty for alerts that wait minutes before firing.
INTERVAL_S = 60  # whole minutes: the file says "1m"
# An instant query reads only the newest point; Grafana still wants a range.
QUERY_RANGE_S = 600
# Threshold expressions compare with gt and lt only before Grafana 11.6 (gte, eq...
# came later); other comparisons are math (`$A >= 3`), which every version has.
THRESHOLD_OPS = {">": "gt", "<": "lt"}
VALUE = re.compile(r"\$value\b(?!s)")


def grafana_template(text: str) -> str:
    return VALUE.sub("$values.A.Value", text)


def uid(alert: Alert) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", alert.name).lower()


def prometheus_query(ref: str, promql: str) -> alerting.Query:
    return (
        alerting.Query(ref)
        .datasource_uid(DATASOURCE_UID)
        .relative_time_range(alerting_model.RelativeTimeRange(from_val=QUERY_RANGE_S, to=0))
        .model(
            prometheus.Dataquery()
            .expr(promql)
            .instant()
            .ref_id(ref)
            .datasource(dashboard_model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID))
        )
    )


def expression(ref: str, model: expr.TypeThreshold | expr.TypeMath) -> alerting.Query:
    source = dashboard_model.DataSourceRef(type_val=EXPR_UID, uid=EXPR_UID)
    return alerting.Query(ref).datasource_uid(EXPR_UID).model(model.ref_id(ref).datasource(source))


def threshold(ref: str, source: str, op: str, limit: float) -> alerting.Query:
    if op not in THRESHOLD_OPS:
        return expression(ref, expr.TypeMath().expression(f"${source} {op} {number(limit)}"))
    evaluator = expr.ExprTypeThresholdConditionsEvaluator().type(THRESHOLD_OPS[op]).params([limit])
    condition = expr.ExprTypeThresholdConditions().evaluator(evaluator)
    return expression(ref, expr.TypeThreshold().expression(source).conditions([condition]))


def queries(alert: Alert) -> tuple[str, list[alerting.Query]]:
    """The rule's queries and the refId of its condition."""
    guard = f"\n{alert.guard}" if alert.guard else ""
    value = prometheus_query("A", inline(alert.value + guard))
    if isinstance(alert.threshold, Series):
        return "C", [
            value,
            prometheus_query("B", inline(alert.threshold.expr)),
            expression("C", expr.TypeMath().expression(f"$A {alert.op} $B")),
        ]
    return "B", [value, threshold("B", "A", alert.op, alert.threshold)]


def rule(alert: Alert) -> alerting.Rule:
    condition, data = queries(alert)
    return (
        alerting.Rule(alert.name)
        .uid(uid(alert))
        .folder_uid(FOLDER_UID)
        .rule_group(GROUP)
        .org_id(ORG_ID)
        .queries(data)
        .condition(condition)
        .for_val(alert.for_ or "0s")
        .no_data_state(alert.no_data)
        .exec_err_state("Error")
        .labels({"severity": alert.severity})
        .annotations({k: grafana_template(v) for k, v in alert.annotations.items()})
    )


def plain(model: object) -> Any:
    """The SDK's model as JSON data (dicts, lists, scalars)."""
    return json.loads(json.dumps(model, cls=JSONEncoder))


def rule_group() -> dict[str, Any]:
    """The rule group as Grafana's HTTP provisioning API takes it."""
    group = (
        alerting.RuleGroup(GROUP)
        .folder_uid(FOLDER_UID)
        .interval(INTERVAL_S)
        .rules([rule(alert) for alert in ALERTS])
    )
    doc = plain(group.build())
    assert isinstance(doc, dict)
    return doc


# Keys the file format keeps on the group, not on each rule.
GROUP_KEYS = ("folderUID", "ruleGroup", "orgID")


# The order a reader wants; the SDK's is alphabetical.
FILE_RULE_KEYS = (
    "uid", "title", "condition", "data", "for", "noDataState", "execErrState", "labels",
    "annotations",
)  # fmt: skip


def file_rule(api_rule: dict[str, Any]) -> dict[str, Any]:
    rule = {k: v for k, v in api_rule.items() if k not in GROUP_KEYS}
    first = {k: rule.pop(k) for k in FILE_RULE_KEYS if k in rule}
    return first | rule


def api_rule(file_rule: dict[str, Any]) -> dict[str, Any]:
    """A rule of the provisioning file back in the API's shape (for the tests)."""
    return {**file_rule, "folderUID": FOLDER_UID, "ruleGroup": GROUP, "orgID": ORG_ID}


class Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL) as literal blocks."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


Dumper.add_representer(str, _str)

RULES_HEADER = """\
# Grafana-managed alert rules of Postback Monitor, for file provisioning: Grafana
# loads every file in /etc/grafana/provisioning/alerting/ at start (compose.yaml
# mounts provisioning/ there). The same rules as alerts.yml, for Grafana's own
# alerting (contact points and notification policies); notifications.yaml has an
# example of both.
#
# Generated by dashboards/build.py from dashboards/alert_rules.py: edit there. The
# queries use the data source with uid postback-monitor-prometheus
# (provisioning/datasources/prometheus.yaml); in another Grafana, give your
# Prometheus data source that uid or replace it below. Its Prometheus needs no rule
# file: the recording rules of alerts.yml are written out in each query.
"""


def dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True)


def rules_file() -> str:
    group = rule_group()
    doc = {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": ORG_ID,
                "name": group["title"],
                "folder": FOLDER_TITLE,
                "interval": f"{group['interval'] // 60}m",
                "rules": [file_rule(r) for r in group["rules"]],
            }
        ],
    }
    return RULES_HEADER + dump(doc)


CONTACT_POINT = "Postback Monitor"

NOTIFICATIONS_HEADER = """\
# An example contact point and notification policy for the rules in
# postback-monitor-rules.yaml, off by default: every line below apiVersion is a
# comment, so Grafana loads nothing from this file until you uncomment it.
#
# To try it with compose.yaml: uncomment the blocks below, then start with your Slack
# incoming webhook in the environment (compose passes SLACK_WEBHOOK_URL to Grafana,
# which fills in $SLACK_WEBHOOK_URL at provisioning):
#   export SLACK_WEBHOOK_URL=https://hooks.slack.com/services/...
#   docker compose -f dashboards/compose.yaml up
# Another kind (email, pagerduty, telegram, webhook...) takes its own settings: see
# Grafana's "Configure contact points". Careful in a Grafana you already use: a
# provisioned `policies` entry replaces the organization's whole notification policy
# tree; add a route to your own tree instead (matcher grafana_folder = Postback Monitor).
#
# Generated by dashboards/build.py (grafana_alerting.py): edit there.
apiVersion: 1
"""


def contact_point() -> alerting.ContactPoint:
    return (
        alerting.ContactPoint()
        .uid("postback-monitor-slack")
        .name(CONTACT_POINT)
        .type("slack")
        .settings({"url": "$SLACK_WEBHOOK_URL"})
        .disable_resolve_message(False)
    )


def policy() -> alerting.NotificationPolicy:
    """Everything of the folder to the contact point, grouped by rule; critical
    alerts (capture errors, spool, forwards given up, down) repeated hourly."""
    critical = alerting_model.Matcher("severity", alerting_model.MatchType.EQUAL, "critical")
    return (
        alerting.NotificationPolicy()
        .receiver(CONTACT_POINT)
        .group_by(["grafana_folder", "alertname"])
        .group_wait("30s")
        .group_interval("5m")
        .repeat_interval("4h")
        .routes(
            [
                alerting.NotificationPolicy()
                .receiver(CONTACT_POINT)
                .object_matchers([critical])
                .repeat_interval("1h")
            ]
        )
    )


def triples(route: dict[str, Any]) -> dict[str, Any]:
    """Grafana reads object_matchers as [name, op, value] lists; the SDK's JSON
    gives {"Name", "Type", "Value"} objects."""
    out = dict(route)
    if "object_matchers" in out:
        out["object_matchers"] = [
            [m["Name"], m["Type"], m["Value"]] for m in out["object_matchers"]
        ]
    if "routes" in out:
        out["routes"] = [triples(r) for r in out["routes"]]
    return out


def notifications() -> dict[str, Any]:
    """The example in file-provisioning shape, before it is commented out."""
    point = plain(contact_point().build())
    receiver = {k: v for k, v in point.items() if k != "name"}
    return {
        "contactPoints": [{"orgId": ORG_ID, "name": point["name"], "receivers": [receiver]}],
        "policies": [{"orgId": ORG_ID, **triples(plain(policy().build()))}],
    }


def notifications_file() -> str:
    body = dump(notifications())
    return NOTIFICATIONS_HEADER + "".join(f"# {line}\n" for line in body.splitlines())
