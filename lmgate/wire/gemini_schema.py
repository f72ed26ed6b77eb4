"""JSON Schema <-> Gemini's Schema (a subset of OpenAPI 3.0), for tool parameters and structured output.

Gemini refuses keys outside its subset (`$schema`, `additionalProperties`, `$ref`, ...) in
`parameters` and `responseSchema`, so outbound schemas are reduced to it: `$ref`s are inlined from
`$defs`, `type: [x, "null"]` becomes `nullable`, `const` becomes a one-value enum, enums become
strings. Inbound, Gemini's upper-case types become JSON Schema's lower-case ones.
"""

from __future__ import annotations

from typing import Any

# Schema fields Gemini documents (ai.google.dev / Vertex AI reference, Schema object).
_KEEP = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "items", "properties", "required",
        "minItems", "maxItems", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
        "minimum", "maximum", "anyOf", "propertyOrdering", "default", "example",
    }
)
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_MAX_DEPTH = 32


def to_gemini_schema(schema: Any) -> dict[str, Any]:
    """A JSON schema as Gemini's Schema object."""
    if not isinstance(schema, dict):
        return {"type": "OBJECT"}
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _convert(schema, defs, 0)


def _resolve(ref: str, defs: dict[str, Any]) -> Any:
    name = ref.rsplit("/", 1)[-1]
    return defs.get(name, {})


def _convert(s: Any, defs: dict[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(s, dict) or depth > _MAX_DEPTH:
        return {"type": "STRING"}
    if "$ref" in s:
        merged = {**_resolve(str(s["$ref"]), defs), **{k: v for k, v in s.items() if k != "$ref"}}
        return _convert(merged, defs, depth + 1)
    for combiner in ("allOf",):
        if isinstance(s.get(combiner), list) and len(s[combiner]) == 1:
            merged = {**_convert(s[combiner][0], defs, depth + 1), **{k: v for k, v in s.items() if k != combiner}}
            return _convert(merged, defs, depth + 1)
    out: dict[str, Any] = {}
    kind = s.get("type")
    nullable = bool(s.get("nullable"))
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        nullable = nullable or len(kinds) != len(kind)
        kind = kinds[0] if len(kinds) == 1 else None
        if kind is None and kinds:
            out["anyOf"] = [{"type": k.upper()} for k in kinds if isinstance(k, str)]
    options = s.get("anyOf") if isinstance(s.get("anyOf"), list) else s.get("oneOf") if isinstance(s.get("oneOf"), list) else None
    if options is not None:
        real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        nullable = nullable or len(real) != len(options)
        if len(real) == 1:
            inner = _convert(real[0], defs, depth + 1)
            for k in ("description", "title", "default"):
                if k in s:
                    inner[k] = s[k]
            if nullable:
                inner["nullable"] = True
            return inner
        out["anyOf"] = [_convert(o, defs, depth + 1) for o in real]
    if isinstance(kind, str) and kind.lower() in _TYPES and kind.lower() != "null":
        out["type"] = kind.upper()
    if "const" in s:
        out["enum"] = [str(s["const"])]
        out.setdefault("type", "STRING")
    for key, value in s.items():
        if key not in _KEEP or key in ("type", "anyOf"):
            continue
        if key == "properties" and isinstance(value, dict):
            out["properties"] = {name: _convert(v, defs, depth + 1) for name, v in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs, depth + 1)
        elif key == "enum" and isinstance(value, list):
            out["enum"] = [str(v) for v in value if v is not None]
            out["type"] = "STRING"
            out["format"] = "enum"
        elif key in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"):
            out[key] = str(value)
        elif key == "required" and isinstance(value, list):
            props = s.get("properties") or {}
            kept = [r for r in value if r in props] if props else list(value)
            if kept:
                out["required"] = kept
        else:
            out[key] = value
    if "type" not in out and "anyOf" not in out:
        out["type"] = "OBJECT" if "properties" in s else "ARRAY" if "items" in s else "STRING"
    if out.get("type") == "OBJECT" and not out.get("properties"):
        out.pop("required", None)
    if nullable:
        out["nullable"] = True
    return out


def has_properties(schema: Any) -> bool:
    """Gemini refuses an OBJECT with no properties as function parameters: omit those."""
    return isinstance(schema, dict) and bool(schema.get("properties") or schema.get("anyOf") or schema.get("$ref"))


def from_gemini_schema(schema: Any, depth: int = 0) -> Any:
    """Gemini's Schema (upper-case types, nullable) as plain JSON schema."""
    if isinstance(schema, list):
        return [from_gemini_schema(v, depth + 1) for v in schema]
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: from_gemini_schema(v, depth + 1) for k, v in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = from_gemini_schema(value, depth + 1)
        elif key in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties") and isinstance(value, str):
            out[key] = int(value) if value.isdigit() else value
        elif key == "format" and value == "enum":
            continue
        elif key == "nullable":
            continue
        else:
            out[key] = value
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out
