"""The Grafana dashboard and its provisioning: every query names only metrics and labels that the
server exports, through the data source that provisioning creates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.facts import DEPLOY, load_yaml, unknown_names

GRAFANA = DEPLOY / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "mixtral-serve.json").read_text())


def _panels() -> Iterator[dict[str, Any]]:
    for panel in DASHBOARD["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _queries() -> list[tuple[str, str]]:
    queries = [(p["title"], t["expr"]) for p in _panels() for t in p.get("targets", [])]
    queries += [(f"variable {v['name']}", v["definition"]) for v in DASHBOARD["templating"]["list"]]
    return queries


@pytest.mark.parametrize(
    ("title", "expr"), _queries(), ids=[f"{t}:{i}" for i, (t, _) in enumerate(_queries())]
)
def test_queries_name_only_exported_metrics_and_labels(title: str, expr: str) -> None:
    query = expr.removeprefix("label_values(").removesuffix(", instance)")  # a Grafana function
    assert unknown_names(query) == []


def test_the_dashboard_shows_throughput_latency_queue_kv_cache_errors_and_per_key_traffic() -> None:
    exprs = " ".join(expr for _, expr in _queries())
    for metric in (
        "mixtral_generation_tokens_total",
        "mixtral_requests_total",
        "mixtral_time_to_first_token_seconds_bucket",
        "mixtral_inter_token_latency_seconds_bucket",
        "mixtral_request_queue_time_seconds_bucket",
        "mixtral_num_requests_waiting",
        "mixtral_kv_cache_usage_perc",
        "mixtral_rejected_requests_total",
        "mixtral_api_key_requests_in_flight",
    ):
        assert metric in exprs, metric


def test_panels_query_the_provisioned_data_source() -> None:
    [source] = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    compose = load_yaml(DEPLOY.parent / "docker-compose.yml")
    assert "prometheus" in compose["services"]
    assert source["url"] == "http://prometheus:9090"
    uids = {t["datasource"]["uid"] for p in _panels() for t in p.get("targets", [])}
    assert uids == {source["uid"]}
    ids = [p["id"] for p in _panels()]
    assert len(ids) == len(set(ids))


def test_the_provider_loads_the_folder_compose_mounts_the_dashboards_at() -> None:
    [provider] = load_yaml(GRAFANA / "provisioning" / "dashboards" / "mixtral-serve.yml")["providers"]
    volumes = load_yaml(DEPLOY.parent / "docker-compose.yml")["services"]["grafana"]["volumes"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in volumes if v.startswith("./"))
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_the_checker_itself_catches_a_misspelt_metric_and_an_unknown_label() -> None:
    """So that the tests above cannot pass by finding nothing."""
    expr = 'sum by (status, tenant) (rate(mixtral_request_total{status=~"5.."}[5m])) / mixtral_requests_total'
    assert unknown_names(expr) == ["metric mixtral_request_total", "label tenant"]
