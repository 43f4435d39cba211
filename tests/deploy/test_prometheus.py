"""deploy/prometheus: valid for Prometheus itself (promtool), and naming only what the server exports.

promtool comes from Debian's `prometheus` package; .ci/run installs it. In CI (CI set) a missing
promtool fails these tests; on a developer machine without it they are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

from tests.deploy.facts import DEPLOY, default_port, load_yaml, load_yaml_documents, unknown_names

PROMETHEUS = DEPLOY / "prometheus"
JOB = "mixtral-serve"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts.test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool_accepts_the_files(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def _rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_alerts_name_only_exported_metrics_and_labels(rule: dict[str, Any]) -> None:
    assert unknown_names(rule["expr"], extra_metrics=frozenset({"up"})) == []


def test_every_alert_has_a_firing_case_in_the_rule_tests() -> None:
    tested = {
        case["alertname"]
        for test in load_yaml(PROMETHEUS / "alerts.test.yml")["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert tested == {rule["alert"] for rule in _rules()}


def test_the_alerts_cover_latency_errors_kv_cache_and_queue() -> None:
    exprs = " ".join(rule["expr"] for rule in _rules())
    for metric in (
        "mixtral_time_to_first_token_seconds_bucket",
        "mixtral_requests_total",
        "mixtral_kv_cache_usage_perc",
        "mixtral_num_requests_waiting",
    ):
        assert metric in exprs


def test_prometheus_scrapes_the_compose_service_on_the_servers_port_as_the_alerts_job() -> None:
    [job] = load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]
    assert job["job_name"] == JOB
    assert job["metrics_path"] == "/metrics"
    compose = load_yaml(DEPLOY.parent / "docker-compose.yml")
    port = int(compose["services"]["mixtral"]["environment"]["MIXTRAL_PORT"])
    assert port == default_port()
    assert job["static_configs"][0]["targets"] == [f"mixtral:{port}"]
    assert f'job="{JOB}"' in " ".join(rule["expr"] for rule in _rules())
    # On Kubernetes the PodMonitor names the job after the pods' app label, the same name.
    [monitor] = load_yaml_documents(DEPLOY / "k8s" / "podmonitor.yaml")
    label = monitor["spec"]["jobLabel"]
    assert monitor["spec"]["selector"]["matchLabels"][label] == JOB
