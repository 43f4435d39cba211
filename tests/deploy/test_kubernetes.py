"""deploy/k8s agrees with the code: two GPUs for tensor parallelism 2, probes on routes the app
serves, the server's port under one name everywhere, real Settings names, selectors that match."""

from __future__ import annotations

from typing import Any

from tests.deploy.facts import (
    DEPLOY,
    default_port,
    get_routes,
    load_yaml,
    load_yaml_documents,
    settings_env_names,
)

K8S = DEPLOY / "k8s"
DOCS = {doc["kind"]: doc for path in sorted(K8S.glob("*.yaml")) for doc in load_yaml_documents(path)}
DEPLOYMENT = DOCS["Deployment"]
POD = DEPLOYMENT["spec"]["template"]
[CONTAINER] = POD["spec"]["containers"]
ENV = {item["name"]: item["value"] for item in CONTAINER["env"]}
[PORT] = CONTAINER["ports"]


def test_kustomization_lists_every_manifest() -> None:
    listed = load_yaml(K8S / "kustomization.yaml")["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert set(DOCS) == {"Deployment", "Service", "PodMonitor", "Kustomization"}


def test_two_gpus_for_tensor_parallelism_two() -> None:
    gpus = CONTAINER["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus == 2 == int(ENV["MIXTRAL_TENSOR_PARALLEL_SIZE"])


def test_environment_names_real_settings() -> None:
    assert set(ENV) <= settings_env_names(), set(ENV) - settings_env_names()


def test_the_servers_port_is_the_container_port_and_the_scrape_port() -> None:
    assert int(ENV["MIXTRAL_PORT"]) == default_port() == PORT["containerPort"]
    annotations = POD["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == PORT["containerPort"]
    assert annotations["prometheus.io/path"] in get_routes()


def _probes() -> dict[str, dict[str, Any]]:
    return {kind: CONTAINER[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}


def test_probes_ask_routes_the_app_serves_on_the_named_port() -> None:
    for kind, probe in _probes().items():
        assert probe["httpGet"]["path"] in get_routes(), kind
        assert probe["httpGet"]["port"] == PORT["name"], kind
    # A slow model load must not trip liveness: the startup probe allows minutes.
    startup = _probes()["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60


def test_the_model_is_read_only_and_shared_memory_is_large() -> None:
    mounts = {m["name"]: m for m in CONTAINER["volumeMounts"]}
    volumes = {v["name"]: v for v in POD["spec"]["volumes"]}
    assert mounts["models"]["readOnly"] is True
    assert mounts["models"]["mountPath"] == ENV["MIXTRAL_MODEL"]
    assert volumes["models"]["persistentVolumeClaim"]["readOnly"] is True
    assert mounts["dshm"]["mountPath"] == "/dev/shm"
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"


def test_it_runs_as_the_images_non_root_user() -> None:
    security = POD["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001  # the Dockerfile's useradd --uid


def test_service_and_pod_monitor_select_the_pods_and_use_the_named_port() -> None:
    labels = POD["metadata"]["labels"]
    selectors = [
        DEPLOYMENT["spec"]["selector"]["matchLabels"],
        DOCS["Service"]["spec"]["selector"],
        DOCS["PodMonitor"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    assert DOCS["Service"]["spec"]["ports"][0]["targetPort"] == PORT["name"]
    [endpoint] = DOCS["PodMonitor"]["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == PORT["name"]
    assert endpoint["path"] in get_routes()
