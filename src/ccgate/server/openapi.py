"""The admin API's OpenAPI 3.1 document, written by hand as data.

Served at ``GET /admin/openapi.json``. A test checks that the paths and methods here are
exactly the ones ``AdminApi`` routes, and that real responses conform to the schemas, so the
document cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from ccgate.store.validate import (
    DURATION_PATTERN,
    GLOB_PATTERN,
    MAX_BUDGET,
    MAX_GLOB_LENGTH,
    MAX_GLOBS,
    MAX_LIMIT,
    NAME_PATTERN,
)

# The patterns and bounds are the validators' own (store/validate.py), so what this document
# calls valid is exactly what the server accepts; tests/store/test_admin_openapi_fuzz.py checks
# the two against each other with schemathesis.
_DURATION = {"type": ["string", "null"], "pattern": f"^{DURATION_PATTERN}$"}
_LIMIT = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIMIT}
_BUDGET: dict[str, Any] = {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_BUDGET}
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
_PROVIDER_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                   "description": "the provider's name in the config"}
_PROVIDER_ERRORS = {**_AUTH_ERRORS, "404": _error("no such provider in the config file")}
_KEY_ERRORS = {**_AUTH_ERRORS, "404": _error("no such key")}

_SCHEMAS: dict[str, Any] = {
    "Key": {
        "type": "object",
        "description": "An issued key as listed. Never contains the secret or its hash.",
        "additionalProperties": False,
        "required": ["id", "name", "prefix", "models", "rpm", "tpm", "created_at", "expires_at",
                     "revoked_at", "grace_until", "budget_day", "budget_month", "status"],
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
            "budget_day": _BUDGET | {"description": "USD the key may spend per UTC day; null: no cap"},
            "budget_month": _BUDGET | {"description": "USD per UTC calendar month; null: no cap"},
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
            "name": {"type": "string", "pattern": f"^{NAME_PATTERN}$",
                     "description": "unique among unrevoked keys; must not start with key_"},
            "models": {"type": "array", "maxItems": MAX_GLOBS,
                       "items": {"type": "string", "pattern": f"^{GLOB_PATTERN}$",
                                 "maxLength": MAX_GLOB_LENGTH},
                       "description": "fnmatch globs such as claude-*; default every model"},
            "rpm": {**_LIMIT, "description": "requests per minute; default no limit"},
            "tpm": {**_LIMIT, "description": "tokens per minute; default no limit"},
            "expires": {**_DURATION, "description": "lifetime such as 90d (m, h, d, w; at most ten years); "
                                                    "default never"},
            "budget_day": _BUDGET | {"description": "USD per UTC day; default no cap"},
            "budget_month": _BUDGET | {"description": "USD per UTC calendar month; default no cap"},
        },
    },
    "UpdateKey": {
        "type": "object",
        "additionalProperties": False,
        "description": "Fields left out keep their value; null removes a budget. At least one field.",
        "minProperties": 1,
        "properties": {
            "budget_day": _BUDGET | {"description": "USD per UTC day"},
            "budget_month": _BUDGET | {"description": "USD per UTC calendar month"},
        },
    },
    "Rotate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "grace": {**_DURATION,
                      "description": "how long the old secret keeps working, e.g. 1h; default: it stops now"},
        },
    },
    "UsageGroup": {
        "type": "object",
        "additionalProperties": False,
        "required": ["group", "name", "requests", "errors", "input_tokens", "output_tokens",
                     "cache_read_tokens", "cache_creation_tokens", "cache_write_1h_tokens", "cost_usd",
                     "unpriced_requests", "first_at", "last_at"],
        "properties": {
            "group": {"type": ["string", "null"], "description": "key id, model, provider or session id"},
            "name": {"type": ["string", "null"], "description": "the key's name (by=key)"},
            "requests": {"type": "integer"},
            "errors": {"type": "integer", "description": "responses with status >= 400"},
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "cache_read_tokens": {"type": "integer"},
            "cache_creation_tokens": {"type": "integer", "description": "cache writes, 5-minute and 1-hour"},
            "cache_write_1h_tokens": {"type": "integer",
                                      "description": "the 1-hour part of cache_creation_tokens"},
            "cost_usd": {"type": ["number", "null"],
                         "description": "USD of the priced requests; null when none of them had a price"},
            "unpriced_requests": {"type": "integer",
                                  "description": "requests on a model without a price (their cost is unknown)"},
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
    "ReloadOutcome": {
        "type": "object",
        "additionalProperties": False,
        "required": ["reloaded", "trigger", "config", "message", "providers", "restart_needed"],
        "properties": {
            "reloaded": {"type": "boolean"},
            "trigger": {"type": "string", "description": "admin API, SIGHUP or config file changed"},
            "config": {"type": "string", "description": "the config file, or embedded defaults"},
            "message": {"type": "string"},
            "providers": {"type": "object", "additionalProperties": {
                "type": "string", "enum": ["kept", "changed", "added", "removed"]},
                "description": "kept: its keys' health and breaker carry over; changed: it starts fresh"},
            "restart_needed": {"type": "array", "items": {"type": "string"},
                               "description": "changed settings that apply only at the next restart"},
        },
    },
    "Target": {
        "type": "object",
        "additionalProperties": False,
        "required": ["provider", "model"],
        "properties": {"provider": {"type": "string"},
                       "model": {"type": ["string", "null"],
                                 "description": "the model sent upstream; null keeps the requested one"}},
    },
    "Routes": {
        "type": "object",
        "additionalProperties": False,
        "required": ["config", "providers", "routes", "default_provider"],
        "properties": {
            "config": {"type": "string"},
            "providers": {"type": "array", "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "kind", "base_url", "keys", "usable", "alias_prefix"],
                "properties": {
                    "name": {"type": "string"},
                    "kind": {"type": "string",
                             "enum": ["anthropic", "anthropic-compatible", "openai-compatible"]},
                    "base_url": {"type": "string"},
                    "keys": {"type": "integer", "description": "how many api_keys (never the keys)"},
                    "usable": {"type": "boolean", "description": "a key is healthy and the breaker not open"},
                    "alias_prefix": {"type": ["string", "null"],
                                     "description": "GET /v1/models lists this provider's models as this "
                                                    "prefix + the model id (null: not discovered)"},
                },
            }},
            "routes": {"type": "array", "description": "the models: rules in the order they match", "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["match", "to", "fallbacks", "display_name", "max_tokens", "context_window"],
                "properties": {
                    "match": {"type": "string"},
                    "to": _ref("Target"),
                    "fallbacks": {"type": "array", "items": _ref("Target")},
                    "display_name": {"type": ["string", "null"]},
                    "max_tokens": {"type": ["integer", "null"]},
                    "context_window": {"type": ["integer", "null"]},
                },
            }},
            "default_provider": {"type": "string", "description": "where a model no rule matches goes"},
        },
    },
    "RouteInfo": {
        "type": "object",
        "required": ["match", "to"],
        "properties": {"match": {"type": "string"}, "to": {"type": "string"},
                       "tier": {"type": "string", "description": "the Claude Code tier it serves"},
                       "context_window": {"type": "integer"}},
    },
    "ProviderSummary": {
        "type": "object",
        "required": ["name", "kind", "base_url", "preset", "key_refs", "auth_header", "routes"],
        "properties": {
            "name": {"type": "string"}, "kind": {"type": "string"}, "base_url": {"type": "string"},
            "preset": {"type": ["string", "null"]},
            "key_refs": {"type": "array", "items": {"type": "string"},
                         "description": "env:VAR, file:PATH or literal; never a key's value"},
            "auth_header": {"type": "string"},
            "routes": {"type": "array", "items": _ref("RouteInfo")},
        },
    },
    "ProviderList": {
        "type": "object", "required": ["data"],
        "properties": {"data": {"type": "array", "items": _ref("ProviderSummary")}},
    },
    "Connect": {
        "type": "object",
        "additionalProperties": False,
        "description": "ccgate connect's flags: a preset, or base_url and kind (docs/connect.md)",
        "properties": {
            "preset": {"type": ["string", "null"]},
            "base_url": {"type": ["string", "null"]},
            "kind": {"type": ["string", "null"], "enum": ["openai-compatible", "anthropic-compatible",
                                                          "anthropic", None]},
            "name": {"type": ["string", "null"]},
            "key": {"type": ["string", "null"],
                    "description": "a key (stored in a 0600 file next to the config, never in the YAML), "
                                   "env:VAR or file:PATH"},
            "models": {"type": "array", "items": {"type": "string"},
                       "description": "the first is the main model"},
            "tiers": {"type": "object", "additionalProperties": {"type": "string"},
                      "description": "Claude Code tier (main, opus, sonnet, haiku, subagent) -> model id"},
            "test": {"type": "boolean", "default": True}, "force": {"type": "boolean", "default": False},
            "tools": {"type": "boolean", "default": True},
        },
    },
    "Check": {
        "type": "object",
        "required": ["ok", "model", "url", "message"],
        "properties": {
            "ok": {"type": "boolean"}, "model": {"type": ["string", "null"]}, "url": {"type": "string"},
            "message": {"type": "string",
                        "description": "the provider's own error text on failure, keys masked"},
            "status": {"type": ["integer", "null"]}, "latency_ms": {"type": ["number", "null"]},
            "finding": {"type": ["string", "null"]}, "hop": {"type": ["string", "null"]},
            "tools": {"type": ["string", "null"]}, "tools_message": {"type": ["string", "null"]},
        },
    },
    "ConnectResult": {
        "type": "object",
        "required": ["provider", "kind", "base_url", "action", "saved", "config_path", "routes", "check"],
        "properties": {
            "provider": {"type": "string"}, "kind": {"type": "string"}, "base_url": {"type": "string"},
            "action": {"type": "string", "enum": ["added", "updated", "unchanged", "not_saved"]},
            "saved": {"type": "boolean"}, "config_path": {"type": "string"},
            "routes": {"type": "array", "items": _ref("RouteInfo")},
            "check": {"oneOf": [_ref("Check"), {"type": "null"}]},
            "reload": _ref("ReloadOutcome"),
        },
    },
    "RemoveResult": {
        "type": "object",
        "required": ["provider", "config_path", "routes_removed", "reload"],
        "properties": {"provider": {"type": "string"}, "config_path": {"type": "string"},
                       "routes_removed": {"type": "array", "items": {"type": "string"}},
                       "reload": _ref("ReloadOutcome")},
    },
    "ProviderModels": {
        "type": "object",
        "required": ["provider", "models", "routes", "error"],
        "properties": {
            "provider": {"type": "string"},
            "models": {"type": "array", "items": {"type": "object", "required": ["id"],
                                                   "properties": {"id": {"type": "string"}}}},
            "routes": {"type": "array", "items": _ref("RouteInfo")},
            "error": {"type": ["string", "null"], "description": "why the live list is missing"},
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
            "description": "Issue, list, revoke and rotate client keys; read usage; reload the config and "
                           "read the routes in use. Enabled only when an "
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
                "patch": {
                    "operationId": "updateKey", "summary": "Change a key's daily and monthly budgets",
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("UpdateKey")}}},
                    "responses": {
                        "200": _json(_ref("Key"), "the updated key"),
                        "400": _error("invalid budget"), **_KEY_ERRORS,
                        "409": _error("the key is revoked"),
                    },
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
                         "schema": {"type": "string", "default": "7d",
                                    "pattern": f"^(?:{DURATION_PATTERN}|all)$"},
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
            "/admin/config/reload": {
                "post": {
                    "operationId": "reloadConfig",
                    "summary": "Reload the config file now; in-flight requests finish on the old config",
                    "responses": {
                        "200": _json(_ref("ReloadOutcome"), "reloaded"), **_AUTH_ERRORS,
                        "422": _error("the config is unusable (the message `ccgate config check` prints); "
                                      "the previous config keeps serving"),
                    },
                },
            },
            "/admin/routes": {
                "get": {
                    "operationId": "routes", "summary": "The providers and model routes requests use now",
                    "responses": {"200": _json(_ref("Routes"), "the running config's routes"), **_AUTH_ERRORS},
                },
            },
            "/admin/providers": {
                "get": {
                    "operationId": "listProviders", "summary": "The providers in the config file",
                    "responses": {"200": _json(_ref("ProviderList"), "providers, keys as references only"),
                                  **_AUTH_ERRORS},
                },
                "post": {
                    "operationId": "connectProvider",
                    "summary": "Test and save a provider and Claude Code's tier routes, then reload",
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("Connect")}}},
                    "responses": {
                        "201": _json(_ref("ConnectResult"), "added"),
                        "200": _json(_ref("ConnectResult"),
                                     "updated, unchanged, or not saved (the test failed)"),
                        "400": _error("invalid input; nothing written"), **_AUTH_ERRORS,
                        "422": _error("could not be done; nothing written"),
                    },
                },
            },
            "/admin/providers/{name}": {
                "parameters": [_PROVIDER_PARAM],
                "delete": {
                    "operationId": "removeProvider", "summary": "Remove a provider and its routes, then reload",
                    "responses": {"200": _json(_ref("RemoveResult"), "removed"), **_PROVIDER_ERRORS,
                                  "422": _error("could not be done; nothing written")},
                },
            },
            "/admin/providers/{name}/test": {
                "parameters": [_PROVIDER_PARAM],
                "post": {
                    "operationId": "testProvider", "summary": "One real, minimal request to the provider",
                    "requestBody": {"required": False, "content": {"application/json": {"schema": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"model": {"type": ["string", "null"]}, "tools": {"type": "boolean"}}}}}},
                    "responses": {"200": _json(_ref("Check"), "the outcome (ok false: the provider's error)"),
                                  "400": _error("invalid input"), **_PROVIDER_ERRORS},
                },
            },
            "/admin/providers/{name}/models": {
                "parameters": [_PROVIDER_PARAM],
                "get": {
                    "operationId": "providerModels", "summary": "The provider's live model list and its routes",
                    "responses": {"200": _json(_ref("ProviderModels"), "models and routes"),
                                  **_PROVIDER_ERRORS},
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
