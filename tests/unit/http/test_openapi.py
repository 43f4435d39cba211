"""The published OpenAPI schema documents what the routes answer (tests/fuzz checks it at large)."""

from __future__ import annotations

from server.app import create_app


def test_get_model_documents_its_404_for_a_model_that_is_not_served() -> None:
    """GET /v1/models/not-served answers 404 with an OpenAI error; the schema said only 200/422."""
    operation = create_app().openapi()["paths"]["/v1/models/{model_id}"]["get"]
    assert operation["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
