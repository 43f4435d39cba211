"""Key parsing and matching, without an engine."""

from __future__ import annotations

import pytest

from server.admission.keys import KeyRing
from server.errors import AuthenticationError
from server.process.cli import parse_settings


def test_keys_are_named_by_prefix_or_position() -> None:
    ring = KeyRing(["ops:sk-1", "sk-2", "ci:sk:with:colons"])
    assert ring.names == ["ops", "key2", "ci"]
    assert ring.identify("Bearer sk-1") == "ops"
    assert ring.identify("bearer   sk-2") == "key2"
    assert ring.identify("Bearer sk:with:colons") == "ci"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic sk-1", "sk-1", "Bearer sk-12"])
def test_anything_but_a_configured_bearer_key_is_refused(header: str | None) -> None:
    with pytest.raises(AuthenticationError):
        KeyRing(["sk-1"]).identify(header)


def test_duplicate_names_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="used twice"):
        KeyRing(["a:sk-1", "a:sk-2"])


def test_flag_and_env_take_comma_separated_keys_and_never_show_them(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse_settings(["--api-keys", "a:sk-secret-1,sk-secret-2"])
    assert [k.get_secret_value() for k in settings.api_keys] == ["a:sk-secret-1", "sk-secret-2"]
    assert "sk-secret" not in repr(settings) and "sk-secret" not in str(settings.model_dump())
    monkeypatch.setenv("MIXTRAL_API_KEYS", "x,y")
    assert len(parse_settings([]).api_keys) == 2
    assert KeyRing.from_settings(parse_settings(["--api-keys", ""])) is None
