"""The docs list every setting under the flag and environment names the code really uses, and the
README names the two commands CI runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_page_with_flag_and_env_name(field: str) -> None:
    flag = "--" + field.replace("_", "-")
    env = "MIXTRAL_" + field.upper()
    assert f"| `{flag}` | `{env}` |" in CONFIGURATION


def test_readme_names_the_two_commands_ci_runs() -> None:
    assert "make serve" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
