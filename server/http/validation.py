"""FastAPI's request validation errors (pydantic's, one per problem) as OpenAI's one 400.

Clients written for OpenAI read `param`; clients written for vLLM match on pydantic's error types.
So the message names each field as the client wrote it, with its pydantic type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError

from server.errors import InvalidRequestError

MAX_LISTED_PROBLEMS = 8


@dataclass(frozen=True)
class _Problem:
    param: str
    msg: str
    kind: str  # pydantic's error type; "" for a merged union message
    rank: tuple[int, bool]


def _client_path(loc: tuple[Any, ...], body: Any, missing: bool) -> tuple[list[str | int], str | None]:
    """The path as the client wrote it, and where it first went through a union (None: it did not).

    Pydantic's `loc` also names the union member it tried (`str`, `list[int]`, `function-after[..]`,
    a discriminator's tag): those are not in the client's JSON, so the path follows the body and
    drops them. A final key the body lacks is kept when the error is that it is missing."""
    path: list[str | int] = []
    union: str | None = None
    node = body
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif not (missing and i == len(loc) - 1):
            if union is None:
                union = ".".join(map(str, path))
            continue  # a union member's tag
        path.append(part)
    return path, union


def _problem_text(msg: str, kind: str) -> str:
    """pydantic's message with its error type, as pydantic prints it (`[type=less_than_equal]`):
    clients written against vLLM, whose 400s list pydantic's raw errors, match on the type. Our own
    validators' messages (`value_error`) are sentences of their own and keep no tag."""
    if kind in ("", "value_error"):
        return msg
    return f"{msg} [type={kind}]"


def validation_error(exc: RequestValidationError) -> InvalidRequestError:
    """FastAPI's 422 becomes OpenAI's 400 naming the offending fields as the client wrote them:
    `param` is the first, the message lists each problem (so every bad key of a `logit_bias`).
    A union reports one error per member it tried; only the one that got furthest is kept."""
    errors = exc.errors()
    if not errors:
        return InvalidRequestError("Invalid request.")
    if errors[0].get("type") == "json_invalid":
        return InvalidRequestError(f"The request body is not valid JSON: {errors[0].get('msg', '')}")
    problems: dict[tuple[str, str], _Problem] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        loc = loc[1:] if loc[:1] == ("body",) else loc
        kind = str(error.get("type", ""))
        path, union = _client_path(loc, exc.body, kind == "missing")
        param = ".".join(map(str, path))
        msg = str(error.get("msg", "Invalid value")).removeprefix("Value error, ")
        # How far the member got: deeper, then one whose type fitted (a failed constraint, not "_type").
        rank = (len(loc), not kind.endswith("_type"))
        key = ("union", union) if union is not None else ("field", param)
        known = problems.get(key)
        if known is None or known.rank < rank:
            problems[key] = _Problem(param, msg, kind, rank)
        elif union is not None and known.rank == rank and known.param == param and msg not in known.msg:
            # No member got further: say what each wanted ("a valid string or a valid list"); the
            # merged sentence has no single pydantic type.
            merged = f"{known.msg} or {msg.removeprefix('Input should be ')}"
            problems[key] = _Problem(param, merged, "", rank)
    found = list(problems.values())
    texts = [_problem_text(p.msg, p.kind) for p in found[:MAX_LISTED_PROBLEMS]]
    listed = [f"{p.param}: {text}" if p.param else text for p, text in zip(found, texts, strict=False)]
    more = f" (and {len(found) - len(listed)} more problems)" if len(found) > len(listed) else ""
    return InvalidRequestError("; ".join(listed) + more, param=found[0].param or None)
