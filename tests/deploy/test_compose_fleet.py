"""deploy/compose.fleet.yml: two replicas that share one Redis, HAProxy in front, and the timing of a
replica's stop. Docker has no engine here, so the file is parsed and held to the code's facts: the
store URL the server accepts, the port each replica listens on and the balancer is told, the
image's health check, /ready, and the arithmetic of the shutdown delay against the balancer's
checks and of the grace period against delay + drain.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from server.admission.redis_start import check_url_shape
from server.config import Settings
from tests.deploy.dockerfile import parse
from tests.deploy.facts import DEPLOY, ROOT, default_port, get_routes, load_yaml, settings_env_names

FLEET_FILE = DEPLOY / "compose.fleet.yml"
FLEET = load_yaml(FLEET_FILE)
SERVICES: dict[str, Any] = FLEET["services"]
REPLICAS = {name: s for name, s in SERVICES.items() if str(s.get("image", "")).startswith("mixtral-serve:")}
BALANCER = SERVICES["balancer"]
REDIS = SERVICES["redis"]
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
# Where the official haproxy image reads its configuration.
HAPROXY_IMAGE_CFG = "/usr/local/etc/haproxy/haproxy.cfg"
REDIS_PORT = 6379  # redis-server's default; the command sets no other


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in service["environment"].items()}


def _seconds(duration: str | int | float) -> float:
    """A Compose duration ("45s", "1m30s") or a plain number of seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def _setting(service: dict[str, Any], name: str) -> float:
    """The value the server will run with: the service's variable, else the Settings default."""
    value = _env(service).get(f"MIXTRAL_{name.upper()}")
    if value is not None:
        return float(value)
    field = Settings.model_fields.get(name)
    return float(field.default) if field is not None else 0.0


def test_two_replicas_a_store_and_a_balancer() -> None:
    assert set(SERVICES) == {"redis", "balancer", *REPLICAS}
    assert len(REPLICAS) == 2


def test_only_the_balancer_publishes_a_port() -> None:
    assert [name for name, service in SERVICES.items() if "ports" in service] == ["balancer"]
    [published] = BALANCER["ports"]
    bind = _env(BALANCER)["MIXTRAL_BALANCER_BIND"]
    assert published.rsplit(":", 1)[1] == bind.rsplit(":", 1)[1]


def test_settings_come_from_real_mixtral_variables() -> None:
    for name, replica in REPLICAS.items():
        names = set(_env(replica))
        assert names <= settings_env_names(), (name, names - settings_env_names())


def test_every_replica_uses_the_same_store_and_the_server_accepts_its_url() -> None:
    urls = {_env(replica)["MIXTRAL_SHARED_STATE"] for replica in REPLICAS.values()}
    [url] = urls  # one store for the fleet: N replicas would otherwise admit N times a key's limit
    settings = Settings(shared_state=url)  # type: ignore[arg-type]
    assert settings.shared_state is not None
    check_url_shape(url)
    parts = urlsplit(url)
    assert (parts.hostname, parts.port or REDIS_PORT) == ("redis", REDIS_PORT)
    assert "--port" not in REDIS["command"]
    for replica in REPLICAS.values():
        assert replica["depends_on"]["redis"]["condition"] == "service_healthy"
        failure = _env(replica)["MIXTRAL_SHARED_STATE_FAILURE"]
        assert re.fullmatch(r"\$\{MIXTRAL_SHARED_STATE_FAILURE:-(open|closed)\}|open|closed", failure), (
            failure
        )


def test_redis_is_pinned_persistent_and_checked() -> None:
    image, _, tag = REDIS["image"].partition(":")
    assert image == "redis" and re.fullmatch(r"\d+\.\d+\.\d+(-\w+)?", tag), REDIS["image"]
    command = REDIS["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] in ("everysec", "always")
    [volume] = REDIS["volumes"]
    source, target = volume.split(":")
    assert target == "/data"  # the official image's working directory, where the AOF is written
    assert source in FLEET["volumes"]  # a named volume: the AOF outlives the container
    assert REDIS["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_replicas_listen_on_the_servers_port_and_keep_their_own_cache() -> None:
    caches = set()
    cpu_stage = {stage.name: stage for stage in parse(ROOT / "Dockerfile")[1]}["cpu"]
    image_check = cpu_stage.last("HEALTHCHECK").split("CMD", 1)[1].strip()
    for replica in REPLICAS.values():
        port = int(_env(replica)["MIXTRAL_PORT"])
        assert port == default_port()
        assert [str(p) for p in replica["expose"]] == [str(port)]
        assert replica["build"]["target"] == "cpu" and replica["build"]["context"] == ".."
        assert image_check == str(replica["healthcheck"]["test"][1:]).replace("'", '"')
        [cache] = replica["volumes"]
        source, target = cache.split(":")
        assert target == cpu_stage.env()["MIXTRAL_CACHE_DIR"]
        caches.add(source)
    assert len(caches) == len(REPLICAS)  # two servers never generate the tiny model into one folder


def test_the_keys_file_is_a_secret_every_replica_reads() -> None:
    [(secret, spec)] = FLEET["secrets"].items()
    assert spec["file"].startswith("${MIXTRAL_KEYS_FILE:?")  # compose refuses to start without it
    for replica in REPLICAS.values():
        assert replica["secrets"] == [secret]
        assert _env(replica)["MIXTRAL_API_KEYS_FILE"] == f"/run/secrets/{secret}"


def test_the_balancer_is_pinned_and_reaches_each_replicas_port() -> None:
    image, _, tag = BALANCER["image"].partition(":")
    assert image == "haproxy" and re.fullmatch(r"\d+\.\d+\.\d+(-\w+)?", tag), BALANCER["image"]
    targets = {value for name, value in _env(BALANCER).items() if re.fullmatch(r"MIXTRAL_REPLICA_\d+", name)}
    assert targets == {f"{name}:{_env(replica)['MIXTRAL_PORT']}" for name, replica in REPLICAS.items()}
    assert set(BALANCER["depends_on"]) == set(REPLICAS)
    mounts = dict(reversed(v.split(":", 1)) for v in BALANCER["volumes"])
    assert mounts[f"{HAPROXY_IMAGE_CFG}:ro"] == "./haproxy/haproxy.cfg"


def _haproxy_cfg() -> str:
    source = FLEET_FILE.parent / "haproxy" / "haproxy.cfg"
    if not source.exists():
        pytest.skip("deploy/haproxy/haproxy.cfg comes with the balancer's configuration")
    return source.read_text()


def _check_timing(cfg: str) -> tuple[float, int]:
    """(inter in seconds, fall) of the backend's server checks."""
    [line] = [line for line in cfg.splitlines() if line.strip().startswith("default-server")]
    inter = re.search(r"\binter (\d+)(ms|s)\b", line)
    fall = re.search(r"\bfall (\d+)\b", line)
    assert inter and fall, line
    return int(inter.group(1)) / (1000 if inter.group(2) == "ms" else 1), int(fall.group(1))


def test_the_balancer_config_reads_the_variables_compose_sets_and_checks_ready() -> None:
    cfg = _haproxy_cfg()
    required = set(re.findall(r'"\$\{(MIXTRAL_\w+)\}"', cfg))  # no default in the file
    named = set(re.findall(r"\$\{(MIXTRAL_\w+)", cfg))
    environment = set(_env(BALANCER))
    assert required <= environment, required - environment
    assert environment <= named, environment - named
    [check] = re.findall(r"option httpchk GET (\S+)", cfg)
    assert check == "/ready" and check in get_routes()
    assert "balance leastconn" in cfg


def test_a_stopping_replica_leaves_the_balancer_before_it_drains_and_is_not_killed_draining() -> None:
    inter, fall = _check_timing(_haproxy_cfg())
    for name, replica in REPLICAS.items():
        delay = _setting(replica, "shutdown_delay")
        drain = _setting(replica, "shutdown_timeout")
        # After SIGTERM /ready is 503 at once; the balancer needs `fall` failed checks `inter` apart
        # (plus one interval of phase) before it stops sending: the delay must outlast that.
        assert delay > inter * fall + inter * 0.5, (name, delay, inter, fall)
        assert delay <= 4 * inter * fall, (name, "a delay far past the checks only slows rollouts")
        assert _seconds(replica["stop_grace_period"]) > delay + drain, name


def test_the_fleet_file_sits_where_its_relative_paths_point() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not source.endswith("haproxy.cfg"):
                assert (FLEET_FILE.parent / source).exists(), source
    assert (FLEET_FILE.parent / REPLICAS["replica1"]["build"]["context"] / "Dockerfile").resolve() == (
        ROOT / "Dockerfile"
    )
