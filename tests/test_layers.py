"""Imports point down: model ← rules ← storage ← web, capture, forwarding ← server.

Read from the source with ``ast`` (nothing imported), so a new upward import fails
here, next to the layer it breaks, instead of as an import cycle at startup. Only
the layers already split out are pinned; docs/architecture.md lists them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "monitor"

# Plain data every layer shares: imports nothing of ours but itself.
MODEL = {"verdict", "domain_errors", "hit"}
# Pure judging: no I/O, nothing above it.
RULES = {"rules", "compiler", "judge", "macros", "currencies", "presets"}
# The OpenAPI document's parts: one per resource, the shared parts below them.
OPENAPI_RESOURCES = {"openapi_endpoints", "openapi_hits", "openapi_presets", "openapi_forwards"}


def monitor_imports(module: str) -> set[str]:
    """The modules of ours that ``monitor/<module>.py`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "monitor":
            found |= {alias.name for alias in node.names if alias.name != "__version__"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("monitor."):
            found.add((node.module or "").split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("monitor.")}
    return found - {module}


@pytest.mark.parametrize("module", sorted(MODEL))
def test_the_model_imports_only_the_model(module: str) -> None:
    assert monitor_imports(module) <= MODEL


@pytest.mark.parametrize("module", sorted(RULES))
def test_rules_import_only_rules_and_the_model(module: str) -> None:
    assert monitor_imports(module) <= RULES | MODEL


def test_partitions_and_retention_import_one_way() -> None:
    assert "partitions" in monitor_imports("retention")
    assert "retention" not in monitor_imports("partitions")


@pytest.mark.parametrize("module", sorted(OPENAPI_RESOURCES))
def test_openapi_resources_never_import_the_assembled_document(module: str) -> None:
    assert "openapi" not in monitor_imports(module)
