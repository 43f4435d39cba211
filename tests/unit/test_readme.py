"""The README documents every setting, under the flag and environment names the code really uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme_with_flag_and_env_name(field: str) -> None:
    flag = "--" + field.replace("_", "-")
    env = "MIXTRAL_" + field.upper()
    assert f"| `{flag}` | `{env}` |" in README


def test_readme_names_the_two_commands_ci_runs() -> None:
    assert "make serve" in README and "make test" in README
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "make test" in ci
