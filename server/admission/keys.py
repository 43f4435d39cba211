"""API keys: `Authorization: Bearer KEY` against the configured keys, in constant time.

A key is known by its name (from `name:secret`, or key1, key2, ... by position): logs, metrics and
per-key limits use the name, so the secret never leaves this module. Keys are compared as SHA-256
digests with `hmac.compare_digest`, and every configured key is compared on every call, so neither
the time of one comparison nor the number of them depends on how much of a key a caller guessed.

An entry may end with limits of the key's own, `name:secret rpm=60 tpm=20000 concurrent=2
daily_tokens=1000000 monthly_tokens=20000000` (`none` lifts one): what it does not set comes from
the --key-* settings. So a free tier and a paid tier can share one server, or one fleet.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from server.admission.key_limits import KeyPolicy
from server.config import Settings
from server.errors import AuthenticationError


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    digest: bytes
    options: dict[str, str]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _options(position: int, words: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for word in words:
        option, sep, value = word.partition("=")
        if not sep or not option or not value:
            raise ValueError(f"API key entry {position}: {word!r} is not option=value")
        options[option] = value
    KeyPolicy().with_options(options)  # unknown options and bad values fail at start-up
    return options


def _parse(entries: list[str]) -> list[_Key]:
    keys: list[_Key] = []
    for position, line in enumerate(entries, start=1):
        entry, *words = line.split() or [""]
        name, sep, secret = entry.partition(":")
        if not sep:
            name, secret = f"key{position}", entry
        if not name or not secret:
            raise ValueError(f"API key entry {position} is empty or has an empty name")
        keys.append(_Key(name, _digest(secret), _options(position, words)))
    names = [k.name for k in keys]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ValueError(f"API key name {duplicate!r} is used twice")
    return keys


def _file_entries(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


class KeyRing:
    def __init__(self, entries: list[str]) -> None:
        self._keys = _parse(entries)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing | None:
        """None when no keys are configured: the server is open."""
        entries = [k.get_secret_value() for k in settings.api_keys]
        if settings.api_keys_file is not None:
            entries += _file_entries(settings.api_keys_file)
        ring = cls(entries) if entries else None
        unknown = sorted(set(settings.admin_keys) - set(ring.names if ring else []))
        if unknown:
            raise ValueError(f"--admin-keys names keys that are not configured: {', '.join(unknown)}")
        return ring

    @property
    def names(self) -> list[str]:
        return [k.name for k in self._keys]

    def policies(self, default: KeyPolicy) -> dict[str, KeyPolicy]:
        """The keys with limits of their own: `default` with the key's options over it."""
        return {k.name: default.with_options(k.options) for k in self._keys if k.options}

    def identify(self, authorization: str | None) -> str:
        """The name of the key in an `Authorization` header; AuthenticationError otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "Missing API key. Send it as the header 'Authorization: Bearer YOUR_KEY'."
            )
        presented = _digest(token.strip())
        found: str | None = None
        for key in self._keys:  # no early exit: the same work whichever key matches, or none
            if hmac.compare_digest(presented, key.digest):
                found = key.name
        if found is None:
            raise AuthenticationError("Incorrect API key provided.")
        return found
