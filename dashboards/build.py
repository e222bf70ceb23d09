"""Build dashboards/postback-monitor.json from code (grafana-foundation-sdk).

    python dashboards/build.py          # rewrite the JSON next to this file
    python dashboards/build.py --check  # exit 1 if the committed JSON is stale

Every query filters on ``$endpoint`` (a multi-value variable whose "All" is ``.*``)
and runs on ``$datasource``. The metric names are those of monitor/metrics.py;
tests/system/test_dashboards.py runs every query here against a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUTPUT = Path(__file__).with_name("postback-monitor.json")
UID = "postback-monitor"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
EP = 'endpoint=~"$endpoint"'
RATE = "$__rate_interval"
# Time-since-last-hit colours: matches the silence alert's default (30 minutes).
SILENT_WARN_S = 15 * 60
SILENT_ALERT_S = 30 * 60


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    return q.legend_format(legend) if legend else q


def series(
    title: str, description: str, unit: str, *queries: prometheus.Dataquery
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .height(8)
        .span(12)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    for q in queries:
        panel = panel.with_target(q)
    return panel


def single(title: str, description: str, unit: str, expr: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(4)
        .span(6)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(query(expr))
    )


def quantiles(metric: str, ref_base: str = "") -> list[prometheus.Dataquery]:
    return [
        query(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[{RATE}])))",
            f"p{int(q * 100)}",
            ref=f"{ref_base}{chr(ord('A') + i)}",
        )
        for i, q in enumerate((0.5, 0.95, 0.99))
    ]


def build() -> dict[str, object]:
    hits_rate = f"sum by (endpoint) (rate(postback_monitor_hits_total{{{EP}}}[{RATE}]))"
    builder = (
        dash.Dashboard("Postback Monitor")
        .uid(UID)
        .description("Postbacks captured, flagged and forwarded; capture and writer health.")
        .tags(["postback-monitor"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            dash.QueryVariable("endpoint")
            .label("Endpoint")
            .description("Endpoint ids (the endpoint label of every metric).")
            .datasource(DATASOURCE)
            .query("label_values(postback_monitor_endpoint_exists, endpoint)")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.NUMERICAL_ASC)
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
                f"sum(rate(postback_monitor_unknown_token_requests_total[{RATE}]))",
            )
        )
        .with_panel(
            single(
                "Rejected captures/s",
                "Capture requests answered without storing (413 too large, 503).",
                "reqps",
                f"sum(rate(postback_monitor_capture_errors_total[{RATE}]))",
            )
        )
        .with_panel(
            series(
                "Hits/s by endpoint",
                "Stored hits per second for each endpoint.",
                "reqps",
                query(hits_rate, "endpoint {{endpoint}}"),
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
            series(
                "Duplicate rate by endpoint",
                "Share of stored hits that repeat an earlier click id and event.",
                "percentunit",
                query(
                    f"sum by (endpoint) (rate(postback_monitor_duplicates_total{{{EP}}}[{RATE}]))"
                    f" / {hits_rate}",
                    "endpoint {{endpoint}}",
                ),
            )
        )
        .with_panel(
            table.Panel()
            .title("Time since last hit")
            .description(
                "Seconds since each endpoint's newest stored hit (endpoints that exist); red "
                "from 30 minutes, the silence alert's default expected interval."
            )
            .datasource(DATASOURCE)
            .unit("s")
            .height(8)
            .span(12)
            .show_header(True)
            .thresholds(
                dash.ThresholdsConfig()
                .mode(model.ThresholdsMode.ABSOLUTE)
                .steps(
                    [
                        model.Threshold(None, "green"),
                        model.Threshold(SILENT_WARN_S, "orange"),
                        model.Threshold(SILENT_ALERT_S, "red"),
                    ]
                )
            )
            .override_by_name(
                "Value",
                [
                    model.DynamicConfigValue("displayName", "Since last hit"),
                    model.DynamicConfigValue(
                        "custom.cellOptions", {"type": "color-background", "mode": "basic"}
                    ),
                ],
            )
            .with_target(
                query(
                    "time() - max by (endpoint) "
                    f"(postback_monitor_last_hit_timestamp_seconds{{{EP}}})"
                    " and on (endpoint) "
                    f"min by (endpoint) (postback_monitor_endpoint_exists{{{EP}}}) == 1"
                )
                .instant()
                .format(PromQueryFormat.TABLE)
            )
            .with_transformation(
                model.DataTransformerConfig(
                    id_val="organize",
                    options={"excludeByName": {"Time": True}},
                )
            )
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
                    f"sum(rate(postback_monitor_writer_batch_size_hits_sum[{RATE}]))"
                    f" / sum(rate(postback_monitor_writer_batch_size_hits_count[{RATE}]))",
                    "mean",
                ),
                query(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(postback_monitor_writer_batch_size_hits_bucket[{RATE}])))",
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
                query("sum(postback_monitor_writer_queued_hits)", "queued"),
                query("sum(postback_monitor_spool_pending_hits)", "spooled", ref="B"),
                query(
                    f"sum(increase(postback_monitor_spool_refused_hits_total[{RATE}]))",
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
    )
    doc = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    assert isinstance(doc, dict)
    return doc


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python dashboards/build.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
