"""Tests for the OpenAPI document (L{appliance.http.openapi})."""
import json
from pathlib import Path

import jsonschema

from appliance.http.openapi import document
from appliance.http.params import STATUSES

ROOT = Path(__file__).resolve().parents[2]


def test_docs_copy_is_current():
    """docs/openapi.json is the document the node serves."""
    assert json.loads((ROOT / "docs" / "openapi.json").read_text()) == \
        document()


def test_error_codes_and_example_answer():
    """Every stable error code is in the Error schema, and the issue's
    example answer is valid against the Accepted schema."""
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["components"]["schemas"]["Error"]["properties"]["code"]
               ["enum"]) == set(STATUSES)
    answer = {"id": "1", "parts": 1, "recipients": [
        {"to": "351", "id": "1", "status": "accepted", "price": "0.01",
         "currency": "USD"},
        {"to": "49", "status": "refused", "code": "no_route",
         "reason": "no route"}]}
    jsonschema.Draft202012Validator({
        "$ref": "#/components/schemas/Accepted",
        "components": doc["components"]}).validate(answer)
