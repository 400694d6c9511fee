"""``examples/grafana-dashboard.json`` only queries metrics that pusherd exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pusherd.metrics import Metrics

__all__: list[str] = []

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana-dashboard.json"
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def _exported_names() -> set[str]:
    names: set[str] = set()
    for family in Metrics(prefix="pusherd_").registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        definition = node.get("definition")
        if isinstance(definition, str):
            found.append(definition)
        return found + [e for value in node.values() for e in _expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in _expressions(value)]
    return []


def test_grafana_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = _expressions(dashboard)
    used = {name for expr in expressions for name in re.findall(r"\bpusherd_\w+", expr)}

    unknown = sorted(used - _exported_names())

    assert len(expressions) >= 20
    assert not unknown, f"the dashboard queries metrics pusherd does not export: {unknown}"


def test_grafana_dashboard_panels_have_unique_ids_and_a_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]

    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_grafana_dashboard_has_panels_for_errors_message_sizes_and_users() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {name for expr in _expressions(dashboard) for name in re.findall(r"\bpusherd_\w+", expr)}
    for name in (
        "pusherd_errors_total",
        "pusherd_message_size_bytes_bucket",
        "pusherd_users_online",
    ):
        assert name in used, name
        assert name in _exported_names(), name
