"""docker-compose.yml and its CPU override agree with the code and with each other: two GPUs and
tensor parallelism 2, real Settings names, the server's port, a read-only model, the image's health
check, and Prometheus and Grafana wired to it.

Docker has no engine here; `docker compose config` was not available either, so the files are
parsed and held to the code's facts.
"""

from __future__ import annotations

from typing import Any

from tests.deploy.dockerfile import parse
from tests.deploy.facts import DEPLOY, ROOT, ComposeTag, default_port, load_yaml, settings_env_names

COMPOSE = load_yaml(ROOT / "docker-compose.yml")
SERVICES: dict[str, Any] = COMPOSE["services"]
SERVER = SERVICES["mixtral"]
CPU = load_yaml(DEPLOY / "compose.cpu.yml")["services"]["mixtral"]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> "source[:mode]" for the short volume syntax."""
    out = {}
    for volume in service["volumes"]:
        mode = volume.rsplit(":", 1)[1]
        if mode in ("ro", "rw"):  # split from the right: a ${VAR:-default} source holds colons too
            source, target, _ = volume.rsplit(":", 2)
            out[target] = f"{source}:{mode}"
        else:
            source, target = volume.rsplit(":", 1)
            out[target] = source
    return out


def test_the_server_reserves_two_gpus_and_shards_the_model_over_both() -> None:
    [devices] = SERVER["deploy"]["resources"]["reservations"]["devices"]
    assert devices["driver"] == "nvidia"
    assert devices["count"] == 2
    assert devices["capabilities"] == ["gpu"]
    assert int(SERVER["environment"]["MIXTRAL_TENSOR_PARALLEL_SIZE"]) == devices["count"]
    assert SERVER["ipc"] == "host" or "shm_size" in SERVER
    assert SERVER["build"]["target"] == "gpu"


def test_settings_come_from_real_mixtral_variables() -> None:
    for service in (SERVER, CPU):
        environment = service["environment"]
        names = set((environment.value if isinstance(environment, ComposeTag) else environment).keys())
        assert names <= settings_env_names(), names - settings_env_names()


def test_the_model_directory_is_mounted_read_only_where_the_server_looks() -> None:
    model_path = SERVER["environment"]["MIXTRAL_MODEL"]
    source = _mounts(SERVER)[model_path]
    assert source.startswith("${MIXTRAL_MODEL_DIR")
    assert source.endswith(":ro")


def test_the_published_port_is_the_servers_and_the_health_check_is_the_images() -> None:
    port = int(SERVER["environment"]["MIXTRAL_PORT"])
    assert port == default_port()
    assert [p.rsplit(":", 1)[1] for p in SERVER["ports"]] == [str(port)]
    _, stages = parse(ROOT / "Dockerfile")
    image_check = {stage.name: stage.last("HEALTHCHECK").split("CMD", 1)[1].strip() for stage in stages}
    assert image_check["gpu"] == str(SERVER["healthcheck"]["test"][1:]).replace("'", '"')
    assert SERVER["restart"] in ("unless-stopped", "always", "on-failure")
    cache_dir = parse(ROOT / "Dockerfile")[1][-1].env()["MIXTRAL_CACHE_DIR"]
    assert _mounts(SERVER)[cache_dir] == "mixtral-cache"
    assert "mixtral-cache" in COMPOSE["volumes"]


def test_prometheus_and_grafana_mount_files_that_exist() -> None:
    for name in ("prometheus", "grafana"):
        for volume in SERVICES[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    prometheus_mounts = _mounts(SERVICES["prometheus"])
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    for rule_file in config["rule_files"]:  # relative to the config file, in the container too
        assert prometheus_mounts[f"/etc/prometheus/{rule_file}"] == f"./deploy/prometheus/{rule_file}:ro"


def test_the_cpu_override_runs_the_cpu_image_without_gpus_or_a_model_folder() -> None:
    assert CPU["build"]["target"] == "cpu"
    assert isinstance(CPU["deploy"], ComposeTag) and CPU["deploy"].tag == "!reset"
    environment = CPU["environment"]
    assert isinstance(environment, ComposeTag) and environment.tag == "!override"
    assert "MIXTRAL_MODEL" not in environment.value  # the embedded tiny model
    assert int(environment.value["MIXTRAL_PORT"]) == default_port()
    volumes = CPU["volumes"]
    assert isinstance(volumes, ComposeTag) and volumes.tag == "!override"
    assert [v.split(":")[0] for v in volumes.value] == ["mixtral-cache"]
