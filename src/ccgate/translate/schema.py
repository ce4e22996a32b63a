"""JSON-Schema clean-up for providers that reject keywords (Gemini above all).

The walk knows where schemas nest, so a *property* named ``format`` or ``default`` survives while
the *keyword* is removed. Two rewrites keep meaning that plain removal would lose: ``const: x``
becomes ``enum: [x]``, and local ``$ref``s are inlined before ``$ref``/``$defs`` are stripped.
"""

from __future__ import annotations

from typing import Any

# Keywords whose value maps names to subschemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# Keywords whose value is one subschema (or a boolean schema).
_SCHEMA_ONE = frozenset(
    {
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
        "additionalItems",
    }
)
# Keywords whose value is a list of subschemas.
_SCHEMA_LIST = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_MAX_REF_DEPTH = 8


def clean_schema(schema: Any, strip: frozenset[str]) -> Any:
    """A copy of ``schema`` without the ``strip`` keywords, at every nesting level."""
    if not strip:
        return schema
    root = schema if isinstance(schema, dict) else {}
    return _clean(schema, strip, root, 0)


def parameters_schema(schema: dict[str, Any], strip: frozenset[str]) -> dict[str, Any]:
    """A tool's ``input_schema`` as OpenAI ``parameters``: cleaned, and always an object schema."""
    cleaned = clean_schema(schema, strip)
    out = dict(cleaned) if isinstance(cleaned, dict) else {}
    out.setdefault("type", "object")
    if out.get("type") == "object":
        out.setdefault("properties", {})
    return out


def _clean(node: Any, strip: frozenset[str], root: dict[str, Any], depth: int) -> Any:
    if isinstance(node, list):
        return [_clean(item, strip, root, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in strip and isinstance(node.get("$ref"), str):
        target = _resolve(node["$ref"], root)
        if target is not None and depth < _MAX_REF_DEPTH:
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _clean(merged, strip, root, depth + 1)
        # Unresolvable or too deep (recursive schema): "any value" is the honest fallback.
        node = {k: v for k, v in node.items() if k != "$ref"}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in strip:
            if key == "const" and "enum" not in strip and "enum" not in node:
                out["enum"] = [value]
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _clean(sub, strip, root, depth) for name, sub in value.items()}
        elif key in _SCHEMA_ONE and isinstance(value, dict | list):
            out[key] = _clean(value, strip, root, depth)
        elif key in _SCHEMA_LIST and isinstance(value, list):
            out[key] = [_clean(sub, strip, root, depth) for sub in value]
        else:
            out[key] = value  # data (enum, required, default, description): never walked
    return out


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any] | None:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None
