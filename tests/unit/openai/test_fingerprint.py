"""system_fingerprint: one value per deployment, that changes with what decides the numbers."""

from __future__ import annotations

import dataclasses
import re

from server.config import Settings
from server.engine.base import ModelCard
from server.openai.fingerprint import system_fingerprint

CARD = ModelCard("tiny-mixtral", "/models/tiny", 1024, 32000, "vllm 0.32.0", created=1)


def test_same_deployment_same_fingerprint_across_restarts() -> None:
    restarted = dataclasses.replace(CARD, created=999)  # a restart changes only the start time
    assert system_fingerprint(CARD, Settings()) == system_fingerprint(restarted, Settings())
    assert re.fullmatch(r"fp_[0-9a-f]{10}", system_fingerprint(CARD, Settings()))


def test_engine_model_and_dtype_change_the_fingerprint() -> None:
    base = system_fingerprint(CARD, Settings())
    assert system_fingerprint(dataclasses.replace(CARD, engine_version="vllm 0.26.0"), Settings()) != base
    assert system_fingerprint(dataclasses.replace(CARD, root="/models/other"), Settings()) != base
    assert system_fingerprint(CARD, Settings(dtype="float32")) != base
