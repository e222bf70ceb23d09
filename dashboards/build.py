"""Build the dashboard and the alert rules from code (grafana-foundation-sdk).

    python dashboards/build.py          # rewrite every file in OUTPUTS
    python dashboards/build.py --check  # exit 1 if a committed one is stale
    python dashboards/build.py --out DIR  # write them under DIR instead

The dashboard is below; the rules of alert_rules.py go to alerts.yml
(prometheus_rules.py) and to Grafana's alerting (grafana_alerting.py).

The variables are multi-value, their "All" is ``.*``; the endpoint variable shows
names, its values are ids. Every query runs on ``$datasource`` and filters as
dashboards/panels.py says. The metric names are those of monitor/metrics.py and
monitor/metrics_endpoints.py; tests/system/test_dashboards.py runs every query here
against a real Prometheus.

``schemaVersion`` is Grafana 10.0's (38): the oldest of the Grafana versions the
README names (10 and 11), which later ones migrate forward; the table's
``custom.cellOptions`` needs 10.0 anyway.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

# panels.py lives beside this file: importable however this one is run or loaded.
sys.path.insert(0, str(Path(__file__).parent))
import grafana_alerting
import prometheus_rules
from panels import (
    DATASOURCE,
    EP,
    RATE,
    SEL,
    label_variable,
    named,
    per_endpoint,
    quantiles,
    query,
    series,
    silence_table,
    single,
    table_of,
)

HERE = Path(__file__).parent
OUTPUT = HERE / "postback-monitor.json"
ALERTING = HERE / "provisioning" / "alerting"
UID = "postback-monitor"
SCHEMA_VERSION = 38  # Grafana 10.0; see the module docstring


def build() -> dict[str, object]:
    hits_rate = f"sum by (endpoint) (rate(postback_monitor_hits_total{{{EP}}}[{RATE}]))"
    payout = f"postback_monitor_payout_total{{{EP}}}"
    builder = (
        dash.Dashboard("Postback Monitor")
        .uid(UID)
        .description(
            "Postbacks captured, flagged and forwarded; revenue they report; capture and "
            "writer health."
        )
        .tags(["postback-monitor"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            label_variable("job", "Job", "Prometheus scrape jobs of Postback Monitor.", "")
        )
        .with_variable(
            label_variable(
                "instance", "Instance", "Scrape targets of the selected jobs.", '{job=~"$job"}'
            )
        )
        .with_variable(
            dash.QueryVariable("endpoint")
            .label("Endpoint")
            .description("Endpoints by name; the value is the id (the endpoint label).")
            .datasource(DATASOURCE)
            .query(
                f"query_result(max by (endpoint, name) (postback_monitor_endpoint_info{{{SEL}}}))"
            )
            # Grafana lists each series as {endpoint="2",name="Binom main"} 1 <time>.
            .regex('/endpoint="(?<value>[^"]+)",\\s*name="(?<text>[^"]*)"/')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .with_row(dash.Row("Postbacks"))
        .with_panel(
            single(
                "Hits/s",
                "Stored hits per second, all selected endpoints.",
                "reqps",
                f"sum(rate(postback_monitor_hits_total{{{EP}}}[{RATE}]))",
            )
        )
        .with_panel(
            single(
                "Flagged share",
                "Share of stored hits with at least one flag.",
                "percentunit",
                f"sum(rate(postback_monitor_flagged_hits_total{{{EP}}}[{RATE}]))"
                f" / sum(rate(postback_monitor_hits_total{{{EP}}}[{RATE}]))",
            )
        )
        .with_panel(
            single(
                "Unknown-token requests/s",
                "Requests to capture URLs whose token names no endpoint (404).",
                "reqps",
                f"sum(rate(postback_monitor_unknown_token_requests_total{{{SEL}}}[{RATE}]))",
            )
        )
        .with_panel(
            single(
                "Rejected captures/s",
                "Capture requests answered without storing (413 too large, 503).",
                "reqps",
                f"sum(rate(postback_monitor_capture_errors_total{{{SEL}}}[{RATE}]))",
            )
        )
        .with_panel(
            per_endpoint(
                "Hits/s by endpoint",
                "Stored hits per second for each endpoint.",
                "reqps",
                hits_rate,
            )
        )
        .with_panel(
            series(
                "Flagged share by flag",
                "Flags raised per stored hit, by flag (a hit may carry several flags).",
                "percentunit",
                query(
                    f"sum by (flag) (rate(postback_monitor_flags_total{{{EP}}}[{RATE}]))"
                    " / on () group_left () "
                    f"sum(rate(postback_monitor_hits_total{{{EP}}}[{RATE}]))",
                    "{{flag}}",
                ),
            )
        )
        .with_panel(
            per_endpoint(
                "Duplicate rate by endpoint",
                "Share of stored hits that repeat an earlier click id and event.",
                "percentunit",
                f"sum by (endpoint) (rate(postback_monitor_duplicates_total{{{EP}}}[{RATE}]))"
                f" / {hits_rate}",
            )
        )
        .with_panel(silence_table())
        .with_panel(
            per_endpoint(
                "Test postbacks/s by endpoint",
                "Test and ping postbacks (flag test_traffic: a platform's test marker, or "
                "the endpoint's test click ids or IP ranges) stored per second. They are "
                "left out of every other panel and of the alerts.",
                "reqps",
                f"sum by (endpoint) (rate(postback_monitor_test_hits_total{{{EP}}}[{RATE}]))",
            )
        )
        .with_row(dash.Row("Revenue"))
        .with_panel(
            per_endpoint(
                "Revenue per hour by endpoint and currency",
                "Amounts of stored hits that are not duplicates, per hour, by endpoint and "
                "currency (none: no valid ISO 4217 code). Hits without a valid amount, or "
                "flagged secret_mismatch or ip_not_allowed, add nothing.",
                "short",
                f"sum by (endpoint, currency) (rate({payout}[{RATE}])) * 3600",
                "{{name}} {{currency}}",
            )
        )
        .with_panel(
            table_of(
                "Revenue over the dashboard range",
                "Amounts reported by the stored, non-duplicate hits of the dashboard's time "
                "range, by endpoint, event (other: past the 20 distinct events counted per "
                "endpoint, or not a plain word; none: no event) and currency.",
                "short",
                query(named(f"sum by (endpoint, event, currency) (increase({payout}[$__range]))")),
            ).override_by_name("Value", [model.DynamicConfigValue("displayName", "Revenue")])
        )
        .with_row(dash.Row("Reconciliation"))
        .with_panel(
            table_of(
                "Latest reconciliation by endpoint",
                "Each endpoint's newest finished reconciliation of a network report "
                "(the Reconcile page, or postback-monitor reconcile): the report's rows and "
                "those whose click id was captured. A run over several endpoints shows "
                "its counts under each.",
                "short",
                query(
                    named(
                        f"max by (endpoint, reconciliation) "
                        f"(postback_monitor_reconciliation_report_rows{{{EP}}})"
                    )
                ),
                query(
                    named(
                        f"max by (endpoint, reconciliation) "
                        f"(postback_monitor_reconciliation_matched{{{EP}}})"
                    ),
                    ref="B",
                ),
            )
            .override_by_name("Value #A", [model.DynamicConfigValue("displayName", "Report rows")])
            .override_by_name("Value #B", [model.DynamicConfigValue("displayName", "Matched")])
        )
        .with_panel(
            table_of(
                "Discrepancies of the latest reconciliation",
                "What that run found, by kind: missing_postback (in the report, never "
                "captured), unexpected_postback, amount_mismatch, currency_mismatch, "
                "duplicate_postback, unparsed_row.",
                "short",
                query(
                    named(
                        f"max by (endpoint, reconciliation, kind) "
                        f"(postback_monitor_reconciliation_items{{{EP}}}) > 0"
                    )
                ),
            ).override_by_name("Value", [model.DynamicConfigValue("displayName", "Items")])
        )
        .with_row(dash.Row("Capture and writer"))
        .with_panel(
            series(
                "Capture latency",
                "Request in to response ready, all capture requests: p50, p95, p99.",
                "s",
                *quantiles("postback_monitor_capture_duration_seconds"),
            )
        )
        .with_panel(
            series(
                "Writer commit latency",
                "Time to commit one group-commit batch: p50, p95, p99.",
                "s",
                *quantiles("postback_monitor_writer_commit_duration_seconds"),
            )
        )
        .with_panel(
            series(
                "Writer batch size",
                "Hits per committed batch: mean and p99.",
                "short",
                query(
                    f"sum(rate(postback_monitor_writer_batch_size_hits_sum{{{SEL}}}[{RATE}]))"
                    f" / sum(rate(postback_monitor_writer_batch_size_hits_count{{{SEL}}}[{RATE}]))",
                    "mean",
                ),
                query(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(postback_monitor_writer_batch_size_hits_bucket{{{SEL}}}[{RATE}])))",
                    "p99",
                    ref="B",
                ),
            )
        )
        .with_panel(
            series(
                "Queue and spool",
                "Hits waiting for the writer, acknowledged hits waiting in the local "
                "spool for the database (summed over processes), and hits refused "
                "(503) in the interval because the spool was full.",
                "short",
                query(f"sum(postback_monitor_writer_queued_hits{{{SEL}}})", "queued"),
                query(f"sum(postback_monitor_spool_pending_hits{{{SEL}}})", "spooled", ref="B"),
                query(
                    f"sum(increase(postback_monitor_spool_refused_hits_total{{{SEL}}}[{RATE}]))",
                    "refused: spool full",
                    ref="C",
                ),
            )
        )
        .with_row(dash.Row("Forwarding"))
        .with_panel(
            series(
                "Forward outcomes",
                "Forward attempts per second by outcome.",
                "reqps",
                query(
                    f"sum by (outcome) (rate(postback_monitor_forwards_total{{{EP}}}[{RATE}]))",
                    "{{outcome}}",
                ),
            ).span(24)
        )
        .with_row(dash.Row("Notifications"))
        .with_panel(
            series(
                "Notification outcomes",
                "Notifications sent to channels in the interval, by channel kind and "
                "outcome (failed: after its last attempt).",
                "short",
                query(
                    "sum by (kind, outcome) "
                    f"(increase(postback_monitor_notifications_total{{{SEL}}}[{RATE}]))",
                    "{{kind}} {{outcome}}",
                ),
            ).span(24)
        )
    )
    doc = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    assert isinstance(doc, dict)
    doc["schemaVersion"] = SCHEMA_VERSION
    return doc


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def outputs() -> dict[Path, str]:
    group = json.dumps(grafana_alerting.rule_group(), indent=2, sort_keys=True) + "\n"
    return {
        OUTPUT: render(),
        HERE / "alerts.yml": prometheus_rules.render(),
        HERE / "grafana-alert-rules.json": group,
        ALERTING / "postback-monitor-rules.yaml": grafana_alerting.rules_file(),
        ALERTING / "notifications.yaml": grafana_alerting.notifications_file(),
    }


def main(argv: list[str]) -> int:
    files = outputs()
    if "--out" in argv:  # elsewhere, the same layout (tests/system/test_dashboards_build.py)
        out = Path(argv[argv.index("--out") + 1])
        files = {out / path.relative_to(HERE): text for path, text in files.items()}
    elif "--check" in argv:
        stale = [
            path for path, text in files.items() if not path.exists() or path.read_text() != text
        ]
        for path in stale:
            print(f"{path} is stale: run python dashboards/build.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
