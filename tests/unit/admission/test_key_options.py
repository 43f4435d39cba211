"""Limits of a key's own in the keys file, over the --key-* defaults (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.admission.key_limits import KeyPolicy
from server.admission.keys import KeyRing
from server.config import Settings


def test_a_keys_line_sets_its_own_limits_over_the_defaults(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(
        "# tiers\n"
        "free:sk-free\n"
        "paid:sk-paid rpm=600 tpm=200000 concurrent=8 daily_tokens=5000000 monthly_tokens=none\n"
    )
    ring = KeyRing.from_settings(Settings(api_keys_file=keys, admin_keys=["paid"]))
    assert ring is not None
    assert ring.identify("Bearer sk-paid") == "paid"  # the options are not part of the secret
    default = KeyPolicy(requests_per_minute=10, tokens_per_minute=1000, tokens_per_month=10**6)
    assert ring.policies(default) == {
        "paid": KeyPolicy(
            requests_per_minute=600,
            tokens_per_minute=200000,
            max_concurrent=8,
            tokens_per_day=5000000,
            tokens_per_month=None,
        )
    }


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("a:sk rpm", "not option=value"),
        ("a:sk rps=3", "unknown key option 'rps'"),
        ("a:sk rpm=0", "whole number above 0"),
        ("a:sk tpm=lots", "whole number above 0"),
    ],
)
def test_bad_options_fail_at_start_up(line: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        KeyRing([line])


def test_admin_keys_must_be_configured_keys() -> None:
    with pytest.raises(ValueError, match="not configured: ops"):
        KeyRing.from_settings(Settings(api_keys=["a:sk-1"], admin_keys=["ops"]))  # type: ignore[list-item]


def test_shared_state_is_a_redis_url_whose_password_is_never_shown() -> None:
    with pytest.raises(ValidationError, match="redis://"):
        Settings(shared_state="http://cache:6379")  # type: ignore[arg-type]
    settings = Settings(shared_state="redis://:hunter2@cache:6379/0", shared_state_failure="closed")  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    with pytest.raises(ValidationError):
        Settings(shared_state_failure="maybe")  # type: ignore[arg-type]
