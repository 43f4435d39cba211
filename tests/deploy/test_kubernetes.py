"""deploy/k8s agrees with the code: two GPUs for tensor parallelism 2, probes on routes the app
serves, the server's port under one name everywhere, real Settings names, selectors that match,
and a stop that neither loses requests routed late nor kills a drain. deploy/k8s-fleet, rendered
by kubectl's own kustomize: replicas sharing one Redis that keeps its counts on a volume, the keys
as a Secret."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from server.admission.redis_start import check_url_shape
from server.config import Settings
from tests.deploy.facts import (
    DEPLOY,
    default_port,
    get_routes,
    load_yaml,
    load_yaml_documents,
    module_constant,
    settings_env_names,
)
from tests.deploy.tools import run_tool

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


# --- Stopping a pod ------------------------------------------------------------------------------

# How long the multi-process supervisor waits for its front ends past the drain.
FRONTEND_EXIT_MARGIN_S = module_constant("server/engine/vllm_frontends.py", "FRONTEND_EXIT_MARGIN_S")
# vLLM's own wait for its engine core to exit (the pinned release; vLLM 0.26 takes no timeout).
VLLM_ENGINE_EXIT_S = 5


def _pre_stop_seconds(container: dict[str, Any]) -> float:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return float(command[1])


def _stop_budget(pod: dict[str, Any], container: dict[str, Any]) -> tuple[float, float]:
    """(what the stop may take at most, the grace period Kubernetes gives it)."""
    env = {item["name"]: item.get("value") for item in container["env"]}
    drain = float(env.get("MIXTRAL_SHUTDOWN_TIMEOUT") or Settings.model_fields["shutdown_timeout"].default)
    # After the drain the supervisor waits FRONTEND_EXIT_MARGIN_S more for its front ends (several
    # on GPUs), then the engine core gets vLLM's wait.
    needed = _pre_stop_seconds(container) + drain + FRONTEND_EXIT_MARGIN_S + VLLM_ENGINE_EXIT_S
    return needed, float(pod["spec"]["terminationGracePeriodSeconds"])


def test_a_pre_stop_sleep_outlasts_endpoint_propagation_and_the_grace_period_the_drain() -> None:
    # Endpoint removal reaches kube-proxy and ingress controllers within seconds, not at once.
    assert 5 <= _pre_stop_seconds(CONTAINER) <= 30
    needed, grace = _stop_budget(POD, CONTAINER)
    assert grace > needed, (grace, needed)
    assert grace <= needed + 30  # a stuck pod should not hold a rollout for minutes


def test_the_base_builds_with_kubectls_kustomize() -> None:
    built = run_tool("kubectl", "kustomize", str(K8S))
    assert built.returncode == 0, built.stderr
    assert {doc["kind"] for doc in yaml.safe_load_all(built.stdout)} == {
        "Deployment",
        "Service",
        "PodMonitor",
    }


# --- The fleet -----------------------------------------------------------------------------------

FLEET_DIR = DEPLOY / "k8s-fleet"
KEYS_LINE = "alice:sk-fleet-test rpm=60 concurrent=2"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> the document `kubectl apply -k deploy/k8s-fleet` would send, with a keys.txt
    (the operator's own file, never in the repository) put beside a copy of the manifests."""
    root = tmp_path_factory.mktemp("deploy")
    shutil.copytree(K8S, root / "k8s")
    shutil.copytree(FLEET_DIR, root / "k8s-fleet")
    (root / "k8s-fleet" / "keys.txt").write_text(KEYS_LINE + "\n")
    built = run_tool("kubectl", "kustomize", str(root / "k8s-fleet"))
    assert built.returncode == 0, built.stderr
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(built.stdout)}


def _one(fleet: dict[tuple[str, str], dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [doc for (k, _), doc in fleet.items() if k == kind]
    return doc


def _server(fleet: dict[tuple[str, str], dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = fleet[("Deployment", "mixtral-serve")]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def test_the_fleet_is_the_base_plus_redis_and_the_keys(fleet: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert sorted(kind for kind, _ in fleet) == sorted(
        ["Deployment", "Service", "PodMonitor", "Service", "StatefulSet", "NetworkPolicy", "Secret"]
    )
    deployment, container = _server(fleet)
    assert deployment["spec"]["replicas"] >= 2
    assert set(_env(container)) <= settings_env_names(), set(_env(container)) - settings_env_names()
    # The base's container, probes and stop sequence came through the patch unchanged.
    assert container["readinessProbe"] == CONTAINER["readinessProbe"]
    assert container["lifecycle"] == CONTAINER["lifecycle"]
    needed, grace = _stop_budget(deployment["spec"]["template"], container)
    assert grace > needed


def test_every_replica_reaches_the_one_redis_through_its_service(
    fleet: dict[tuple[str, str], dict[str, Any]],
) -> None:
    _, container = _server(fleet)
    url = _env(container)["MIXTRAL_SHARED_STATE"]
    assert Settings(shared_state=url).shared_state is not None  # type: ignore[arg-type]
    check_url_shape(url)
    parts = urlsplit(url)
    service = fleet[("Service", str(parts.hostname))]
    redis = fleet[("StatefulSet", "mixtral-redis")]
    assert redis["spec"]["replicas"] == 1  # one primary: one count
    pod = redis["spec"]["template"]
    [redis_container] = pod["spec"]["containers"]
    [service_port] = service["spec"]["ports"]
    assert service_port["port"] == (parts.port or 6379)
    [container_port] = [p for p in redis_container["ports"] if p["name"] == service_port["targetPort"]]
    assert container_port["containerPort"] == 6379
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    # The server's Service and PodMonitor must not pick Redis up.
    server_selector = fleet[("Service", "mixtral-serve")]["spec"]["selector"]
    assert not server_selector.items() <= pod["metadata"]["labels"].items()
    assert _env(container)["MIXTRAL_SHARED_STATE_FAILURE"] in ("open", "closed")


def test_redis_is_pinned_and_keeps_its_counts_on_a_volume(
    fleet: dict[tuple[str, str], dict[str, Any]],
) -> None:
    redis = fleet[("StatefulSet", "mixtral-redis")]
    [container] = redis["spec"]["template"]["spec"]["containers"]
    image, _, tag = container["image"].partition(":")
    assert image == "redis" and tag.count(".") == 2, container["image"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"  # never drop counts silently
    [claim] = redis["spec"]["volumeClaimTemplates"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert mount["mountPath"] == "/data"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == ["redis-cli", "ping"], probe


def test_only_the_servers_pods_may_reach_redis(fleet: dict[tuple[str, str], dict[str, Any]]) -> None:
    policy = _one(fleet, "NetworkPolicy")
    redis_labels = fleet[("StatefulSet", "mixtral-redis")]["spec"]["template"]["metadata"]["labels"]
    server_labels = POD["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= redis_labels.items()
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= server_labels.items()
    assert [p["port"] for p in rule["ports"]] == ["redis"]


def test_the_keys_file_is_a_generated_secret_mounted_where_the_server_reads_it(
    fleet: dict[tuple[str, str], dict[str, Any]],
) -> None:
    secret = _one(fleet, "Secret")
    _, container = _server(fleet)
    pod_spec = fleet[("Deployment", "mixtral-serve")]["spec"]["template"]["spec"]
    path = Path(_env(container)["MIXTRAL_API_KEYS_FILE"])
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    # The name carries a hash of the content: a changed key rolls the pods, which read it at start.
    assert volume["secret"]["secretName"] == secret["metadata"]["name"] != "mixtral-serve-keys"
    assert path.name in secret["data"]
    assert volume["secret"]["defaultMode"] & 0o007 == 0  # not readable by other users
    assert pod_spec["securityContext"]["fsGroup"] == 10001
    assert ".gitignore" in {p.name for p in FLEET_DIR.iterdir()}
    assert path.name in (FLEET_DIR / ".gitignore").read_text().split()
    assert not (FLEET_DIR / path.name).exists()  # never committed
