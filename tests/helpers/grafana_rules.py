"""The generated alerting files of dashboards/, read back for the tests: the
Prometheus rules, the Grafana-managed rules and their Prometheus queries."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

DASHBOARDS = Path(__file__).parents[2] / "dashboards"
ALERTS = DASHBOARDS / "alerts.yml"
ALERTING = DASHBOARDS / "provisioning" / "alerting"
GRAFANA_RULES = ALERTING / "postback-monitor-rules.yaml"
NOTIFICATIONS = ALERTING / "notifications.yaml"
RULE_GROUP_JSON = DASHBOARDS / "grafana-alert-rules.json"
EXPR_UID = "__expr__"


def load_build() -> ModuleType:
    """dashboards/build.py as a module (it puts dashboards/ on sys.path for the
    modules beside it)."""
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboards_module(name: str) -> ModuleType:
    """A module beside build.py (grafana_alerting, alert_rules, ...)."""
    load_build()
    module = sys.modules[name]
    assert Path(module.__file__ or "").parent == DASHBOARDS, module.__file__
    return module


def prometheus_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def grafana_groups() -> list[dict[str, Any]]:
    doc = yaml.safe_load(GRAFANA_RULES.read_text())
    assert doc["apiVersion"] == 1
    groups = doc["groups"]
    assert isinstance(groups, list)
    return groups


def grafana_rules() -> list[dict[str, Any]]:
    return [rule for group in grafana_groups() for rule in group["rules"]]


def grafana_queries() -> list[tuple[str, str]]:
    """(name, PromQL) of every data query of every Grafana rule."""
    return [
        (f"grafana {rule['title']} {query['refId']}", query["model"]["expr"])
        for rule in grafana_rules()
        for query in rule["data"]
        if query["datasourceUid"] != EXPR_UID
    ]
