# -*- test-case-name: tests.http.test_openapi -*-
"""
The OpenAPI 3.1 document of the HTTP API, served at C{/openapi.json} and
kept in C{docs/openapi.json} (a test checks they are the same).
"""
from __future__ import annotations

from typing import Any

from appliance.http.params import STATUSES

_ERROR = {
    "type": "object", "required": ["code", "reason"],
    "properties": {
        "code": {"type": "string", "enum": sorted(STATUSES)},
        "reason": {"type": "string"},
        "parameter": {"type": "string"},
        "recipients": {"type": "array",
                       "items": {"$ref": "#/components/schemas/Recipient"}},
    },
}
_RECIPIENT = {
    "oneOf": [
        {"type": "object", "required": ["to", "id", "status"],
         "properties": {
             "to": {"type": "string"}, "id": {"type": "string"},
             "status": {"const": "accepted"},
             "price": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
             "currency": {"type": "string"}}},
        {"type": "object", "required": ["to", "status", "code", "reason"],
         "properties": {
             "to": {"type": "string"}, "status": {"const": "refused"},
             "code": {"type": "string", "enum": sorted(STATUSES)},
             "reason": {"type": "string"}}},
    ],
}
_ACCEPTED = {
    "type": "object", "required": ["id", "parts", "recipients"],
    "properties": {
        "id": {"type": "string"},
        "parts": {"type": "integer", "minimum": 1},
        "recipients": {"type": "array", "minItems": 1, "maxItems": 100,
                       "items": {"$ref": "#/components/schemas/Recipient"}},
    },
}
_STATUS = {
    "type": "object",
    "required": ["id", "state", "from", "to", "parts", "accepted_at",
                 "updated_at", "attempts"],
    "properties": {
        "id": {"type": "string"},
        "state": {"type": "string", "enum": [
            "accepted", "delivering", "delivered", "failed", "expired",
            "refused"]},
        "from": {"type": "string"}, "to": {"type": "string"},
        "parts": {"type": "integer"},
        "accepted_at": {"type": "string"}, "updated_at": {"type": "string"},
        "attempts": {"type": "integer"},
        "client-ref": {"type": "string"},
        "connection": {"type": "string"},
        "carrier_id": {"type": "string"},
        "route": {"type": "string"},
        "error": {"type": "string"},
        "charged": {"type": "string"},
    },
}
_REPORT = {"allOf": [{"$ref": "#/components/schemas/Status"}, {
    "type": "object", "required": ["event"],
    "properties": {"event": {"enum": ["final", "progress"]}}}]}


def _param(name: str, schema: dict, doc: str, required: bool = False,
           where: str = "query") -> dict:
    return {"name": name, "in": where, "required": required,
            "description": doc, "schema": schema}


_SEND_PARAMS = [
    _param("from", {"type": "string", "minLength": 1, "maxLength": 16},
           "Sender: a number or an alphanumeric name (up to 11)", True),
    _param("to", {"type": "string", "minLength": 1},
           "Recipients: one number, comma-separated, or repeated (up to "
           "100)", True),
    _param("body", {"type": "string", "minLength": 1}, "The text", True),
    _param("coding", {"enum": ["auto", "gsm7", "ucs2"]},
           "Alphabet (default auto)"),
    _param("validity", {"type": "integer", "minimum": 60},
           "Seconds the message may wait for delivery"),
    _param("dlr-url", {"type": "string", "format": "uri"},
           "Where to POST delivery reports"),
    _param("dlr-level", {"enum": ["final", "all"]},
           "Report the final state only (default), or every state"),
    _param("client-ref", {"type": "string", "maxLength": 64},
           "Your reference, returned in reports"),
    _param("username", {"type": "string"}, "Tenant name (instead of Basic)"),
    _param("password", {"type": "string"}, "Tenant password"),
]


def _json(schema_ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": schema_ref}}}


def _errors(*statuses: int) -> dict:
    out = {}
    for status in statuses:
        out[str(status)] = {"description": "Refused",
                            "content": _json("#/components/schemas/Error")}
        if status in (429, 503):
            out[str(status)]["headers"] = {"Retry-After": {
                "schema": {"type": "integer"}}}
    return out


def _text(description: str) -> dict:
    return {"description": description,
            "content": {"text/plain": {"schema": {"type": "string"}}}}


def _with_post(get: dict) -> dict:
    """A GET operation and the same as a POST with a form body."""
    post = {k: v for k, v in get.items() if k != "parameters"}
    post["operationId"] = get["operationId"] + "Post"
    post["requestBody"] = {"required": False, "content": {
        "application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {
                p["name"]: p["schema"] for p in get["parameters"]}}}}}
    return {"get": get, "post": post}


def document() -> dict[str, Any]:
    """@return: the OpenAPI 3.1 document."""
    send_responses = {
        "200": {"description": "Accepted for at least one recipient, "
                "after the commit", "content":
                _json("#/components/schemas/Accepted")},
        **_errors(400, 401, 402, 403, 404, 405, 413, 415, 429, 503)}
    send_body = {"required": False, "content": {
        "application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {
                p["name"]: p["schema"] for p in _SEND_PARAMS}}},
        "application/json": {"schema": {
            "type": "object", "properties": {
                **{p["name"]: p["schema"] for p in _SEND_PARAMS},
                "to": {"oneOf": [{"type": "string"}, {
                    "type": "array", "items": {"type": "string"},
                    "maxItems": 100}]}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Appliance HTTP API", "version": "1",
                 "description": "Send SMS with one HTTP call; the node "
                 "picks the carrier by the destination."},
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "Recipient": _RECIPIENT,
                        "Accepted": _ACCEPTED, "Status": _STATUS,
                        "Report": _REPORT},
        },
        "security": [{"basic": []}, {"bearer": []}, {}],
        "paths": {
            "/sendsms/send": {
                "get": {"operationId": "send", "summary": "Send a message",
                        "parameters": _SEND_PARAMS,
                        "responses": send_responses},
                "post": {"operationId": "sendPost",
                         "summary": "Send a message (form or JSON body)",
                         "requestBody": send_body,
                         "responses": send_responses},
            },
            "/sendsms/status": {"get": {
                "operationId": "status",
                "summary": "State of one of your messages",
                "parameters": [_param("id", {"type": "string"},
                                      "Message id", True)],
                "responses": {
                    "200": {"description": "The message",
                            "content": _json("#/components/schemas/Status")},
                    **_errors(400, 401, 403, 404, 429)}}},
            "/cgi-bin/sendsms": _with_post({
                "operationId": "kannelSend",
                "summary": "Kannel smsbox compatible send",
                "parameters": [_param(n, {"type": "string"}, n) for n in (
                    "username", "password", "from", "to", "text", "dlr-url",
                    "dlr-mask", "coding", "validity")],
                "responses": {"202": _text("0: Accepted for delivery"),
                              "400": _text("Field misformed"),
                              "403": _text("Authorization failed"),
                              "500": _text("Sending failed."),
                              "503": _text("Temporal failure")}}),
            "/send": _with_post({
                "operationId": "jasminSend",
                "summary": "Jasmin HTTP API compatible send",
                "parameters": [_param(n, {"type": "string"}, n) for n in (
                    "username", "password", "from", "to", "content",
                    "coding", "dlr", "dlr-url", "dlr-level", "dlr-method")],
                "responses": {"200": _text('Success "ID"'),
                              "400": _text('Error "..."'),
                              "403": _text('Error "..."'),
                              "412": _text('Error "No route found"'),
                              "500": _text('Error "..."')}}),
            "/balance": _with_post({
                "operationId": "jasminBalance",
                "summary": "Jasmin HTTP API compatible balance",
                "parameters": [_param(n, {"type": "string"}, n, True)
                               for n in ("username", "password")],
                "responses": {"200": {"description": "Balance", "content": {
                    "application/json": {"schema": {
                        "type": "object",
                        "required": ["balance", "sms_count"]}}}},
                    "400": {"description": "Missing arguments"},
                    "403": {"description": "Authentication failure"}}}),
            "/metrics": {"get": {
                "operationId": "metrics", "security": [],
                "summary": "Prometheus metrics of the node",
                "responses": {"200": _text("Prometheus text format"),
                              **_errors(403)}}},
            "/healthz": {"get": {
                "operationId": "health", "security": [],
                "summary": "Storage writable and listeners up",
                "responses": {
                    "200": {"description": "Healthy", "content": {
                        "application/json": {"schema": {"type": "object"}}}},
                    "503": {"description": "Failing", "content": {
                        "application/json": {"schema": {"type": "object"}}}},
                    **_errors(403)}}},
            "/openapi.json": {"get": {
                "operationId": "openapi", "security": [],
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}}}}},
        },
    }
