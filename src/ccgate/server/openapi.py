"""The admin API's OpenAPI 3.1 document, written by hand as data.

Served at ``GET /admin/openapi.json``. A test checks that the paths and methods here are
exactly the ones ``AdminApi`` routes, and that real responses conform to the schemas, so the
document cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_KEY_PARAM = {
    "name": "key", "in": "path", "required": True, "schema": {"type": "string"},
    "description": "key id (`key_...`); a key name is accepted too (the unrevoked key of that name)",
}
_AUTH_ERRORS = {"401": _error("missing or invalid admin key")}
_KEY_ERRORS = {**_AUTH_ERRORS, "404": _error("no such key")}

_SCHEMAS: dict[str, Any] = {
    "Key": {
        "type": "object",
        "description": "An issued key as listed. Never contains the secret or its hash.",
        "additionalProperties": False,
        "required": ["id", "name", "prefix", "models", "rpm", "tpm", "created_at", "expires_at",
                     "revoked_at", "grace_until", "status"],
        "properties": {
            "id": {"type": "string", "pattern": "^key_[0-9a-f]{16}$"},
            "name": {"type": "string"},
            "prefix": {"type": "string", "description": "first characters of the secret, for recognition"},
            "models": {"type": "array", "items": {"type": "string"},
                       "description": "model globs the key may use; empty means every model"},
            "rpm": {"type": ["integer", "null"], "minimum": 1, "description": "requests per minute"},
            "tpm": {"type": ["integer", "null"], "minimum": 1, "description": "tokens per minute"},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": _NULLABLE_TIME,
            "revoked_at": _NULLABLE_TIME,
            "grace_until": {**_NULLABLE_TIME, "description": "the previous secret works until then"},
            "status": {"type": "string", "enum": ["active", "rotating", "expired", "revoked"]},
        },
    },
    "KeyWithSecret": {
        "type": "object",
        "additionalProperties": False,
        "required": ["key", "secret"],
        "properties": {
            "key": _ref("Key"),
            "secret": {"type": "string", "pattern": "^ccg_",
                       "description": "shown only in this response; ccgate keeps only a hash"},
        },
    },
    "KeyList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["data"],
        "properties": {"data": {"type": "array", "items": _ref("Key")}},
    },
    "CreateKey": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
                     "description": "unique among unrevoked keys; must not start with key_"},
            "models": {"type": "array", "items": {"type": "string"}, "maxItems": 64,
                       "description": "fnmatch globs such as claude-*; default every model"},
            "rpm": {"type": ["integer", "null"], "minimum": 1},
            "tpm": {"type": ["integer", "null"], "minimum": 1},
            "expires": {"type": ["string", "null"], "pattern": "^[0-9]+[mhdw]$",
                        "description": "lifetime such as 90d (m, h, d, w); default never"},
        },
    },
    "Rotate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "grace": {"type": ["string", "null"], "pattern": "^[0-9]+[mhdw]$",
                      "description": "how long the old secret keeps working, e.g. 1h; default: it stops now"},
        },
    },
    "UsageGroup": {
        "type": "object",
        "additionalProperties": False,
        "required": ["group", "name", "requests", "errors", "input_tokens", "output_tokens",
                     "cache_read_tokens", "cache_creation_tokens", "first_at", "last_at"],
        "properties": {
            "group": {"type": ["string", "null"], "description": "key id, model, provider or session id"},
            "name": {"type": ["string", "null"], "description": "the key's name (by=key)"},
            "requests": {"type": "integer"},
            "errors": {"type": "integer", "description": "responses with status >= 400"},
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "cache_read_tokens": {"type": "integer"},
            "cache_creation_tokens": {"type": "integer"},
            "first_at": {"type": "string", "format": "date-time"},
            "last_at": {"type": "string", "format": "date-time"},
        },
    },
    "UsageReport": {
        "type": "object",
        "additionalProperties": False,
        "required": ["since", "by", "data"],
        "properties": {
            "since": _NULLABLE_TIME,
            "by": {"type": "string", "enum": ["key", "model", "provider", "session"]},
            "data": {"type": "array", "items": _ref("UsageGroup")},
        },
    },
    "Error": {
        "type": "object",
        "description": "Anthropic's error envelope, as for every error ccgate produces",
        "required": ["type", "error", "request_id"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
            "request_id": {"type": "string"},
        },
    },
}


def openapi_document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ccgate admin API",
            "version": version,
            "description": "Issue, list, revoke and rotate client keys; read usage. Enabled only when an "
                           "admin key is configured (server.admin.key or CCGATE_ADMIN_KEY); send it as "
                           "'Authorization: Bearer' or x-api-key. See docs/keys.md.",
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/admin/keys": {
                "get": {
                    "operationId": "listKeys", "summary": "List keys, revoked and expired ones included",
                    "responses": {"200": _json(_ref("KeyList"), "all keys"), **_AUTH_ERRORS},
                },
                "post": {
                    "operationId": "createKey", "summary": "Issue a key; the secret is returned once",
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("CreateKey")}}},
                    "responses": {
                        "201": _json(_ref("KeyWithSecret"), "the new key and its secret"),
                        "400": _error("invalid field (the message names it)"),
                        **_AUTH_ERRORS,
                        "409": _error("an unrevoked key already has this name"),
                    },
                },
            },
            "/admin/keys/{key}": {
                "parameters": [_KEY_PARAM],
                "get": {
                    "operationId": "getKey", "summary": "One key",
                    "responses": {"200": _json(_ref("Key"), "the key"), **_KEY_ERRORS},
                },
            },
            "/admin/keys/{key}/revoke": {
                "parameters": [_KEY_PARAM],
                "post": {
                    "operationId": "revokeKey", "summary": "Stop a key from working (no body)",
                    "responses": {
                        "200": _json(_ref("Key"), "the revoked key"), **_KEY_ERRORS,
                        "409": _error("already revoked"),
                    },
                },
            },
            "/admin/keys/{key}/rotate": {
                "parameters": [_KEY_PARAM],
                "post": {
                    "operationId": "rotateKey", "summary": "Give a key a new secret, returned once",
                    "requestBody": {"required": False,
                                    "content": {"application/json": {"schema": _ref("Rotate")}}},
                    "responses": {
                        "200": _json(_ref("KeyWithSecret"), "the key and its new secret"),
                        "400": _error("invalid grace duration"), **_KEY_ERRORS,
                        "409": _error("the key is revoked or expired"),
                    },
                },
            },
            "/admin/usage": {
                "get": {
                    "operationId": "usage", "summary": "Token and request totals per group",
                    "parameters": [
                        {"name": "since", "in": "query", "required": False,
                         "schema": {"type": "string", "default": "7d", "pattern": "^([0-9]+[mhdw]|all)$"},
                         "description": "how far back: 30m, 12h, 7d, 4w or all"},
                        {"name": "by", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": ["key", "model", "provider", "session"],
                                    "default": "key"}},
                    ],
                    "responses": {
                        "200": _json(_ref("UsageReport"), "totals, most tokens first"),
                        "400": _error("invalid query parameter"), **_AUTH_ERRORS,
                    },
                },
            },
            "/admin/openapi.json": {
                "get": {
                    "operationId": "openapi", "summary": "This document", "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.1 document",
                                          "content": {"application/json": {"schema": {"type": "object"}}}}},
                },
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": _SCHEMAS,
        },
    }
