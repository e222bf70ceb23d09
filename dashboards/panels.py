"""The pieces of the dashboard dashboards/build.py puts together: the query
selectors every panel shares, the join that names endpoints, and panel shapes.

Every query filters on ``$job`` and ``$instance``; per-endpoint ones on ``$endpoint``
too. Per-endpoint series are named by a join on ``postback_monitor_endpoint_info``
(``named``), which also gives each one a link to the endpoint's page.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'job=~"$job", instance=~"$instance"'
EP = f'{SEL}, endpoint=~"$endpoint"'
RATE = "$__rate_interval"
# One name and page per endpoint; topk keeps one while two targets briefly disagree
# about a rename (two would fail every group_left).
NAMES = (
    "topk by (endpoint) (1, max by (endpoint, name, url) "
    f"(postback_monitor_endpoint_info{{{SEL}}}))"
)
# Share of the endpoint's expected interval gone without a hit: orange, then red when
# the silence alert's threshold is reached.
SILENT_WARN_SHARE = 0.5
SILENT_ALERT_SHARE = 1.0
PAGE_LINK = {"title": "Open endpoint ${__field.labels.name}", "url": "${__field.labels.url}"}
TABLE_LINK = {"title": "Open endpoint", "url": "${__data.fields.url}"}


def named(expr: str) -> str:
    """``expr`` (one series per endpoint, or more) with each endpoint's name and page
    as labels; endpoints that no longer exist drop out."""
    return f"({expr}) * on (endpoint) group_left (name, url) {NAMES}"


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


def per_endpoint(
    title: str, description: str, unit: str, expr: str, legend: str = "{{name}}"
) -> timeseries.Panel:
    """A time series per endpoint, named, each linking to the endpoint's page."""
    return series(title, description, unit, query(named(expr), legend)).override_by_query(
        "A", [model.DynamicConfigValue("links", [PAGE_LINK])]
    )


def table_of(
    title: str, description: str, unit: str, *queries: prometheus.Dataquery
) -> table.Panel:
    """A table of instant queries, merged on their labels; the endpoint name links to
    its page and the url column is hidden."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(12)
        .show_header(True)
        .override_by_name(
            "name",
            [
                model.DynamicConfigValue("displayName", "Endpoint"),
                model.DynamicConfigValue("links", [TABLE_LINK]),
            ],
        )
        .override_by_name("url", [model.DynamicConfigValue("custom.hidden", True)])
        .override_by_name("endpoint", [model.DynamicConfigValue("displayName", "Id")])
    )
    for q in queries:
        panel = panel.with_target(q.instant().format(PromQueryFormat.TABLE))
    if len(queries) > 1:
        panel = panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    return panel.with_transformation(
        model.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}})
    )


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
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{SEL}}}[{RATE}])))",
            f"p{int(q * 100)}",
            ref=f"{ref_base}{chr(ord('A') + i)}",
        )
        for i, q in enumerate((0.5, 0.95, 0.99))
    ]


def label_variable(name: str, label: str, description: str, selector: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(f"label_values(postback_monitor_capture_duration_seconds_count{selector}, {name})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def silence_table() -> table.Panel:
    since = (
        "time() - max by (endpoint) ("
        f"postback_monitor_last_hit_timestamp_seconds{{{EP}}} or label_replace("
        f'postback_monitor_endpoint_created_timestamp_seconds{{{EP}}}, "since", "created", "", ""))'
    )
    interval = f"max by (endpoint) (postback_monitor_endpoint_expected_interval_seconds{{{EP}}})"
    return (
        table_of(
            "Silence by endpoint",
            "Time since each endpoint's newest stored hit (since its creation if it never "
            "had one), its expected interval (the expected_interval setting; none when "
            "off) and how much of it has gone: red once the silence alert's threshold is "
            "reached.",
            "s",
            query(named(since)),
            query(named(interval), ref="B"),
            query(named(f"{since} / on (endpoint) {interval}"), ref="C"),
        )
        .thresholds(
            dash.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps(
                [
                    model.Threshold(None, "green"),
                    model.Threshold(SILENT_WARN_SHARE, "orange"),
                    model.Threshold(SILENT_ALERT_SHARE, "red"),
                ]
            )
        )
        .override_by_name("Value #A", [model.DynamicConfigValue("displayName", "Silent for")])
        .override_by_name(
            "Value #B", [model.DynamicConfigValue("displayName", "Expected interval")]
        )
        .override_by_name(
            "Value #C",
            [
                model.DynamicConfigValue("displayName", "Share of interval"),
                model.DynamicConfigValue("unit", "percentunit"),
                model.DynamicConfigValue(
                    "custom.cellOptions", {"type": "color-background", "mode": "basic"}
                ),
            ],
        )
    )
