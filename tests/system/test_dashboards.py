"""dashboards/: the generated dashboard is current, the rules pass promtool, and every
query of the dashboard and the rules returns data from a real Prometheus scraping the
service."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient

from monitor.metrics import Metrics
from monitor.web import metrics_route
from monitor.web.appkeys import METRICS
from tests.conftest import CaptureClient, capture_path
from tests.helpers.grafana_rules import grafana_queries
from tests.helpers.metrics import parse, send_mix, value
from tests.helpers.prometheus import Prometheus, instant
from tests.helpers.reconcile import csv_text, start

DASHBOARDS = Path(__file__).parents[2] / "dashboards"
DASHBOARD_JSON = DASHBOARDS / "postback-monitor.json"
ALERTS = DASHBOARDS / "alerts.yml"
JOB = "postback-monitor"
# What Grafana would put in place of the dashboard's variables.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "${endpoint}": ".*",
    "$endpoint": ".*",
    "$job": ".*",
    "$instance": ".*",
}
LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[^,]+),\s*(?P<label>\w+)\)$")
QUERY_RESULT = re.compile(r"^query_result\((?P<expr>.+)\)$")
# The Grafana versions the README names (10 and 11) read schema 38 (10.0) and newer.
SCHEMA_VERSION = 38
COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)")
METRIC_NAME = re.compile(r"\bpostback_monitor_[a-z_]+")


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text())


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))  # collapsed rows hold their panels


def dashboard_queries() -> list[tuple[str, str]]:
    return [
        (f"panel {panel['title']!r} {target.get('refId', '')}", target["expr"])
        for panel in panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def variable_queries() -> list[tuple[str, str]]:
    return [
        (f"variable {v['name']}", v["query"])
        for v in dashboard()["templating"]["list"]
        if v["type"] == "query"
    ]


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def substitute(expr: str) -> str:
    for name, replacement in VARIABLES.items():
        expr = expr.replace(name, replacement)
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


def with_bool(expr: str) -> str:
    """The alert's expression with every comparison made a `bool` one.

    A filtering comparison returns nothing while the alert is not firing; the `bool`
    form returns 0 or 1 for every series the expression sees, so an empty answer can
    only mean a wrong name or label.
    """
    masked = re.sub(r'"[^"]*"', lambda m: " " * len(m[0]), expr)
    masked = re.sub(r"\{[^}]*\}", lambda m: " " * len(m[0]), masked)
    out, last = [], 0
    for m in COMPARISON.finditer(masked):
        out += [expr[last : m.end()], " bool"]
        last = m.end()
    assert out, f"an alert without a comparison: {expr}"
    return "".join(out) + expr[last:]


def test_with_bool() -> None:
    assert with_bool('a{x!="1", y=~"a|b"} > 0.5 and on (e) b >= 2') == (
        'a{x!="1", y=~"a|b"} > bool 0.5 and on (e) b >= bool 2'
    )


def test_dashboard_json_is_generated_by_build_py() -> None:
    assert load_build().render() == DASHBOARD_JSON.read_text(), (
        "dashboards/postback-monitor.json is stale: run python dashboards/build.py"
    )


def test_dashboard_has_datasource_job_instance_and_endpoint_variables() -> None:
    doc = dashboard()
    assert doc["schemaVersion"] == SCHEMA_VERSION
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance", "endpoint"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance", "endpoint"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
        assert variables[name]["multi"]
    for panel in panels(doc["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    for name, expr in dashboard_queries():
        # Every selector of every query, not just one of them.
        for selector in re.findall(r"\bpostback_monitor_\w+(\{[^}]*\})?", expr):
            assert 'job=~"$job", instance=~"$instance"' in selector, (name, expr)
        if "endpoint" in expr:
            assert 'endpoint=~"$endpoint"' in expr, name


def test_per_endpoint_panels_show_names_and_link_to_the_endpoint() -> None:
    by_title = {p["title"]: p for p in panels(dashboard()["panels"])}
    for title in (
        "Hits/s by endpoint",
        "Duplicate rate by endpoint",
        "Revenue per hour by endpoint and currency",
    ):
        (target,) = by_title[title]["targets"]
        assert "group_left (name, url)" in target["expr"], title
        assert target["legendFormat"].startswith("{{name}}"), title
        (override,) = by_title[title]["fieldConfig"]["overrides"]
        links = {p["id"]: p["value"] for p in override["properties"]}["links"]
        assert links[0]["url"] == "${__field.labels.url}"
    for title in ("Silence by endpoint", "Revenue over the dashboard range"):
        for target in by_title[title]["targets"]:
            assert "group_left (name, url)" in target["expr"], title
        field_config = by_title[title]["fieldConfig"]
        overrides = {o["matcher"]["options"]: o for o in field_config["overrides"]}
        links = {p["id"]: p["value"] for p in overrides["name"]["properties"]}["links"]
        assert links[0]["url"] == "${__data.fields.url}"


def test_every_metric_name_used_is_defined() -> None:
    defined: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
            "info": ["_info"],
        }
        for suffix in suffixes.get(family.type, [""]):
            defined.add(family.name + suffix)
    exprs = [e for _, e in dashboard_queries() + variable_queries()]
    exprs += [rule["expr"] for rule in rules()]
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used - defined == set()
    # And every metric is on the dashboard or in a rule.
    families = {re.sub(r"_(total|bucket|sum|count|info)$", "", n) for n in used}
    assert {f.name for f in Metrics().registry.collect()} <= families


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: apt-get install prometheus (.ci/run does)")
    # `promtool test rules` takes ~35 s of CPU: minutes of wall time on a busy machine.
    return subprocess.run(
        [path, *args], cwd=DASHBOARDS, capture_output=True, text=True, timeout=270
    )


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", ALERTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_test_rules() -> None:
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_test_firing_and_not_firing() -> None:
    doc = yaml.safe_load((DASHBOARDS / "alerts_test.yml").read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts == firing == quiet
    for rule in rules():
        if "alert" in rule:
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.fixture
async def prometheus(client: TestClient, tmp_path: Path) -> AsyncIterator[Prometheus]:
    target = f"127.0.0.1:{client.server.port}"
    server = Prometheus(tmp_path / "prometheus", target, ALERTS, JOB)
    server.start()
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while True:
                assert server.proc is not None and server.proc.poll() is None, server.log()
                try:
                    async with session.get(server.url + "/-/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "Prometheus not ready:\n" + server.log()
                await asyncio.sleep(0.2)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def variable_values(
    session: aiohttp.ClientSession, url: str, name: str, query: str
) -> set[tuple[str, str]]:
    """(text, value) of each option a dashboard variable offers, as Grafana makes them."""
    variable = next(v for v in dashboard()["templating"]["list"] if f"variable {v['name']}" == name)
    if m := LABEL_VALUES.match(query):
        result = await instant(session, url, substitute(m["metric"]))
        return {(s["metric"][m["label"]],) * 2 for s in result}  # type: ignore[misc]
    m = QUERY_RESULT.match(query)
    assert m, f"{name}: {query}"
    result = await instant(session, url, substitute(m["expr"]))
    # Grafana's query_result text: {label="value",...} value timestamp, labels in order.
    lines = [
        "{"
        + ",".join(f'{k}="{v}"' for k, v in s["metric"].items())
        + "} "
        + " ".join(map(str, reversed(s["value"])))
        for s in result
    ]
    pattern = re.compile(variable["regex"].strip("/").replace("(?<", "(?P<"))
    found = set()
    for line in lines:
        match = pattern.search(line)
        assert match, f"{name}: {line}"
        found.add((match["text"], match["value"]))
    return found


async def test_every_query_returns_data_from_a_real_prometheus(
    client: TestClient,
    capture: CaptureClient,
    make_endpoint: Any,
    prometheus: Prometheus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoints = [
        await make_endpoint("Binom main", settings={"preset": "binom"}),
        await make_endpoint("flawed"),
        await make_endpoint("never hit"),  # the silence table and alert see it too
    ]
    # A reconciliation of the first endpoint: one report row captured below, five
    # never (the reconciliation panels and PostbackReconciliationMissing read it).
    monkeypatch.setattr(metrics_route, "RECONCILIATION_REFRESH_S", 0.2)
    report = csv_text("click_id,amount", "ok0,1.25", *(f"lost{n},1" for n in range(5)))
    resp = await start(client, report, {"endpoint_ids": [endpoints[0]["id"]]})
    assert resp.status == 201, await resp.text()
    # Counters live as long as the app: the endpoints' creation may have counted too.
    before = parse(await (await client.get("/metrics")).text())
    # Spread over several scrapes, so rates and quantiles have something to work on.
    for round_ in range(4):
        await send_mix(capture, endpoints[1], f"r{round_}-")
        # A test postback: counted only by postback_monitor_test_hits_total.
        test_query = f"click_id=r{round_}-t&test=1"
        assert (await capture.get(f"{capture_path(endpoints[1])}?{test_query}")).status == 200
        query = f"cnv_id=ok{round_}&payout=1.25&cnv_currency=USD&cnv_status=sale"
        resp = await capture.get(f"{capture_path(endpoints[0])}?{query}")
        assert resp.status == 200
        # Forwarding counts what its attempts do; here they are stood in for.
        for outcome in ("delivered", "retrying", "failed"):
            client.app[METRICS].record_forward(endpoints[0]["id"], outcome)
        await asyncio.sleep(1.2)

    queries = [(name, substitute(expr)) for name, expr in dashboard_queries()]
    for rule in rules():
        expr = rule["expr"] if "record" in rule else with_bool(rule["expr"])
        queries.append((rule.get("record") or f"alert {rule['alert']}", expr))
    # Grafana's rules: each value (guards as bool comparisons, as above) and
    # per-series threshold, with the recording rules written out.
    for name, expr in grafana_queries():
        queries.append((name, with_bool(expr) if "\nand on" in expr else expr))
    assert len(queries) > 25

    async with aiohttp.ClientSession() as session:
        # Wait until the last round is scraped and the rules evaluated it.
        deadline = time.monotonic() + 60
        want = 'sum(postback_monitor_hits_total{job="postback-monitor"})'
        while True:
            result = await instant(session, prometheus.url, want)
            if result and float(result[0]["value"][1]) >= 4 * 5 + 4:
                break
            assert time.monotonic() < deadline, f"no scrape yet:\n{prometheus.log()}"
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.5)  # a couple more evaluations of the recording rules

        empty = [
            (name, expr)
            for name, expr in queries
            if not await instant(session, prometheus.url, expr)
        ]
        assert empty == [], "queries without data:\n" + "\n".join(f"{n}: {e}" for n, e in empty)

        for name, query in variable_queries():
            found = await variable_values(session, prometheus.url, name, query)
            if name == "variable endpoint":
                # Names shown, ids as values: what the endpoint label holds.
                expected = {(e["name"], str(e["id"])) for e in endpoints}
            else:
                expected = {("postback-monitor", "postback-monitor")} if "job" in name else set()
            assert expected <= found, (name, found)
            assert found, name

        # Spot checks that the numbers mean what the panels say.
        rows = await instant(
            session,
            prometheus.url,
            substitute(
                'sum by (endpoint) (postback_monitor_flagged_hits_total{endpoint=~"$endpoint"})'
            ),
        )
        flagged = {r["metric"]["endpoint"]: float(r["value"][1]) for r in rows}
        for endpoint, expected in zip(endpoints, (0, 8, 0), strict=True):
            ep = str(endpoint["id"])
            was = value(before, "postback_monitor_flagged_hits_total", endpoint=ep)
            assert flagged.get(ep, 0.0) - was == expected


def test_promtool_check_config_of_the_compose_prometheus() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    scrape = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())["scrape_configs"]
    assert [job["job_name"] for job in scrape] == [JOB]  # PostbackMonitorDown expects it


def test_compose_mounts_what_provisioning_expects() -> None:
    compose = yaml.safe_load((DASHBOARDS / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "postback-monitor", "prometheus", "grafana"}
    mounts: dict[str, dict[str, str]] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounts.setdefault(name, {})[target] = source
            if source.startswith("."):
                assert (DASHBOARDS / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} undeclared"
    assert (DASHBOARDS / services["postback-monitor"]["build"] / "Dockerfile").exists()
    assert services["postback-monitor"]["environment"]["DATABASE_URL"].startswith(
        "postgresql://postgres@postgres:5432/"
    )
    prometheus = mounts["prometheus"]
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./prometheus.yml"
    assert prometheus["/etc/prometheus/alerts.yml"] == "./alerts.yml"
    targets = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())["scrape_configs"][0]
    assert targets["static_configs"][0]["targets"] == ["postback-monitor:8080"]

    grafana = mounts["grafana"]
    assert grafana["/etc/grafana/provisioning"] == "./provisioning"
    provider = yaml.safe_load(
        (DASHBOARDS / "provisioning/dashboards/postback-monitor.yaml").read_text()
    )["providers"][0]
    dashboard_dir = provider["options"]["path"]
    assert grafana[f"{dashboard_dir}/postback-monitor.json"] == "./postback-monitor.json"
    source = yaml.safe_load((DASHBOARDS / "provisioning/datasources/prometheus.yaml").read_text())[
        "datasources"
    ][0]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
