"""ERROR_TABLE: every client-visible error renders as OpenAI's body with the right HTTP status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from server.errors import (
    APIError,
    AuthenticationError,
    ClientDisconnectedError,
    ContextLengthExceededError,
    EngineError,
    EngineUnavailableError,
    ErrorKind,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    error_body,
    kind_of,
)
from server.http.error_handlers import install_error_handlers
from server.observability.metrics import ServerMetrics
from server.observability.middleware import ObserveMiddleware
from server.openai.schemas.chat import ChatCompletionRequest
from server.openai.schemas.completions import CompletionRequest
from tests.helpers import metric_value

RAISED: dict[str, APIError] = {
    "invalid": InvalidRequestError("bad value", param="temperature"),
    "context": ContextLengthExceededError("too long", param="max_tokens"),
    "auth": AuthenticationError("no key"),
    "not_found": NotFoundError("nothing here"),
    "model_not_found": ModelNotFoundError("no such model", param="model"),
    "too_large": PayloadTooLargeError("body too big"),
    "rate_limited": RateLimitError("slow down", retry_after=2.6),
    "rate_limited_soon": RateLimitError("slow down", retry_after=0.2),
    "engine": EngineError("engine failed"),
    "unavailable": EngineUnavailableError("engine is down"),
    "disconnected": ClientDisconnectedError("client left"),
    "custom_code": InvalidRequestError("bad", code="my_code"),
}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{name}")
    async def raise_named(name: str) -> None:
        raise RAISED[name]

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest) -> dict[str, int]:
        return {"n": body.n}

    @app.post("/v1/completions")
    async def complete(body: CompletionRequest) -> dict[str, int]:
        return {"n": body.n}

    return TestClient(app, raise_server_exceptions=False)


def assert_openai_error(body: object, *, type_: str) -> dict[str, object]:
    assert isinstance(body, dict)
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == type_
    return error


@pytest.mark.parametrize(
    ("name", "status", "type_", "param", "code"),
    [
        ("invalid", 400, "invalid_request_error", "temperature", None),
        ("context", 400, "invalid_request_error", "max_tokens", "context_length_exceeded"),
        ("auth", 401, "authentication_error", None, "invalid_api_key"),
        ("not_found", 404, "invalid_request_error", None, None),
        ("model_not_found", 404, "invalid_request_error", "model", "model_not_found"),
        ("too_large", 413, "invalid_request_error", None, None),
        ("rate_limited", 429, "rate_limit_error", None, None),
        ("engine", 500, "server_error", None, None),
        ("unavailable", 503, "service_unavailable", None, "engine_unavailable"),
        ("disconnected", 499, "client_closed_request", None, None),
        ("custom_code", 400, "invalid_request_error", None, "my_code"),
    ],
)
def test_each_error_class_maps_to_its_status_and_openai_body(
    client: TestClient, name: str, status: int, type_: str, param: str | None, code: str | None
) -> None:
    response = client.get(f"/raise/{name}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = assert_openai_error(response.json(), type_=type_)
    assert error["message"] == RAISED[name].message
    assert error["param"] == param
    assert error["code"] == code


def test_rate_limit_sets_retry_after_rounded_to_whole_seconds(client: TestClient) -> None:
    assert client.get("/raise/rate_limited").headers["retry-after"] == "3"


def test_rate_limit_retry_after_is_at_least_one_second(client: TestClient) -> None:
    headers = client.get("/raise/rate_limited_soon").headers
    assert headers["retry-after"] == "1"
    assert headers["retry-after-ms"] == "200"  # the exact wait, for clients that read it (OpenAI's)


def test_only_rate_limit_errors_carry_retry_after(client: TestClient) -> None:
    assert "retry-after" not in client.get("/raise/unavailable").headers


def test_body_validation_failure_is_400_naming_the_field(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "temperature": 2.5}
    )
    assert response.status_code == 400
    error = assert_openai_error(response.json(), type_="invalid_request_error")
    assert error["param"] == "temperature"
    assert error["message"].startswith("temperature: ")
    assert error["code"] is None


def test_nested_validation_failure_names_the_dotted_path(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "robot", "content": "x"}]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages.0.role"


def test_model_level_validation_failure_drops_pydantics_value_error_prefix(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 3}
    )
    assert response.status_code == 400
    error = assert_openai_error(response.json(), type_="invalid_request_error")
    assert error["message"] == "top_logprobs requires logprobs to be true"
    assert error["param"] is None


def test_several_validation_failures_are_counted_in_the_message(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "temperature": 9, "n": 0},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "n"
    assert error["message"] == (
        "n: Input should be greater than or equal to 1 [type=greater_than_equal]; "
        "temperature: Input should be less than or equal to 2 [type=less_than_equal]"
    )


@pytest.mark.parametrize("seed", [-(2**63) - 1, 2**63])
def test_an_out_of_range_seed_names_pydantics_error_type(client: TestClient, seed: int) -> None:
    """vLLM's 400 lists pydantic's raw errors, and clients written against it (vLLM's own tests
    among them) look for the error type, "greater_than_equal" or "less_than_equal"."""
    response = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "seed": seed}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "seed"
    kind = "greater_than_equal" if seed < 0 else "less_than_equal"
    assert error["message"].endswith(f"[type={kind}]")


def test_more_validation_failures_than_listed_are_counted_in_the_message(client: TestClient) -> None:
    bias = {str(i): 500 for i in range(12)}
    response = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "logit_bias": bias}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].endswith("(and 4 more problems)")


def test_every_bad_logit_bias_key_is_named(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"a": 1, "5": 300, "b": 1}},
    )
    error = response.json()["error"]
    assert error["param"] == "logit_bias.a"
    for key in ("logit_bias.a:", "logit_bias.5:", "logit_bias.b:"):
        assert key in error["message"]


@pytest.mark.parametrize(
    ("path", "body", "param", "message"),
    [
        (
            "/v1/completions",
            {"prompt": [5, -1]},
            "prompt.1",
            "Input should be greater than or equal to 0 [type=greater_than_equal]",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "stop": 5},
            "stop",
            "Input should be a valid string or a valid list",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "stop": [1]},
            "stop.0",
            "Input should be a valid string [type=string_type]",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content",
            "Input should be a valid string or a valid list",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_schema"}},
            "response_format.json_schema",
            "Field required [type=missing]",
        ),
        (
            "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": 5}},
            },
            "response_format.json_schema.schema",
            "Input should be a valid dictionary [type=dict_type]",
        ),
    ],
)
def test_validation_errors_name_the_field_as_the_client_wrote_it(
    client: TestClient, path: str, body: dict[str, Any], param: str, message: str
) -> None:
    """pydantic's loc also names the union member it tried ("prompt.str", "stop.list[str].0"); the
    client wrote no such field."""
    response = client.post(path, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"] == f"{param}: {message}"


def test_invalid_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", content=b'{"messages": [', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = assert_openai_error(response.json(), type_="invalid_request_error")
    assert error["message"].startswith("The request body is not valid JSON")
    assert error["param"] is None


def test_unknown_route_is_openai_shaped_404(client: TestClient) -> None:
    response = client.get("/v1/nope")
    assert response.status_code == 404
    error = assert_openai_error(response.json(), type_="invalid_request_error")
    assert error["message"] == "No route GET /v1/nope."


def test_wrong_method_is_openai_shaped_405(client: TestClient) -> None:
    response = client.get("/v1/chat/completions")
    assert response.status_code == 405
    error = assert_openai_error(response.json(), type_="invalid_request_error")
    assert error["message"] == "Method GET is not allowed on /v1/chat/completions."


def test_wrong_method_keeps_the_allow_header(client: TestClient) -> None:
    response = client.get("/v1/chat/completions")
    assert response.headers.get("allow") == "POST"


def test_unexpected_exception_is_500_server_error_without_internals(client: TestClient) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    error = assert_openai_error(response.json(), type_="server_error")
    assert error["message"] == "Internal server error."
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


def test_subclass_inherits_its_parents_row() -> None:
    assert kind_of(ContextLengthExceededError("x")) == ErrorKind(400, "invalid_request_error")
    assert kind_of(ModelNotFoundError("x")) == ErrorKind(404, "invalid_request_error")


def test_error_class_outside_the_table_falls_back_to_500_server_error() -> None:
    class Unlisted(APIError):
        pass

    assert kind_of(Unlisted("x")) == ErrorKind(500, "server_error")
    assert kind_of(APIError("x")) == ErrorKind(500, "server_error")


def test_error_body_shape() -> None:
    body = error_body(ContextLengthExceededError("too long", param="messages"))
    assert body == {
        "error": {
            "message": "too long",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }


def test_explicit_code_overrides_the_default_code() -> None:
    assert ModelNotFoundError("x", code="other").code == "other"
    assert ModelNotFoundError("x").code == "model_not_found"


def test_an_unexpected_exception_is_observed_like_any_answer() -> None:
    """The 500 is made inside the app's middleware, so it carries the request id and is counted."""
    metrics = ServerMetrics()
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(ObserveMiddleware, metrics=metrics)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    response = TestClient(app, raise_server_exceptions=False).get(
        "/boom", headers={"x-request-id": "trace-7"}
    )
    assert response.status_code == 500
    assert assert_openai_error(response.json(), type_="server_error")["message"] == "Internal server error."
    assert response.headers["x-request-id"] == "trace-7"
    exposition = metrics.render().decode()
    assert metric_value(exposition, "mixtral_http_requests_total", 'route="/boom",status="500"') == 1


@pytest.mark.parametrize("observed", [True, False], ids=["observed", "bare"])
def test_an_exception_after_the_response_began_cuts_the_stream_and_adds_no_second_answer(
    observed: bool,
) -> None:
    """Once the status line is out a 500 cannot replace it: the stream is cut where it was (with
    the observing middleware the start is read from the exchange's record, without it from `send`)."""
    app = FastAPI()
    install_error_handlers(app)
    if observed:
        app.add_middleware(ObserveMiddleware, metrics=ServerMetrics())

    async def broken() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        raise RuntimeError("secret internal detail")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(broken(), media_type="text/event-stream")

    with pytest.raises(RuntimeError, match="secret internal detail"):
        TestClient(app).get("/stream")
    client = TestClient(app, raise_server_exceptions=False)
    response = client.get("/stream")
    assert response.status_code == 200
    assert response.text == "data: first\n\n"
