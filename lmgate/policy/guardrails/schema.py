"""The output JSON check: when response_format asks for JSON the answer must parse, and with a
json_schema it must fit the schema. A small validator for the subset structured outputs use
(type, properties, required, additionalProperties, items, enum, const, bounds, lengths, pattern,
anyOf/oneOf/allOf/not, local $ref); keywords outside it are ignored, never failed."""

from __future__ import annotations

import re
from typing import Any

import orjson

from lmgate.types import ResponseFormat

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def check_json(text: str, fmt: ResponseFormat | None) -> str | None:
    """None when the answer is what `fmt` asks for, else why not."""
    if fmt is None or fmt.type == "text":
        return None
    body = text.strip()
    if body.startswith("```"):  # some models fence JSON even in JSON mode
        body = body.strip("`").removeprefix("json").strip()
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return f"the answer is not valid JSON ({exc.msg})"
    if fmt.type == "json_object" and not isinstance(value, dict):
        return "the answer is JSON but not an object"
    if fmt.type == "json_schema" and fmt.schema:
        return validate(value, fmt.schema)
    return None


def validate(value: Any, schema: Any, root: Any = None, path: str = "$") -> str | None:
    """The first way `value` breaks `schema`, as `path: reason`, or None."""
    if root is None:
        root = schema
    if schema is True or schema is None or schema == {}:
        return None
    if schema is False:
        return f"{path}: no value is allowed here"
    if not isinstance(schema, dict):
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(root, ref)
        if target is None:
            return None
        err = validate(value, target, root, path)
        if err:
            return err
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if schema.get("nullable") is True:
            types = [*types, "null"]
        if not any(_TYPES.get(x, lambda v: True)(value) for x in types):
            return f"{path}: expected {' or '.join(map(str, types))}, got {_type_name(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {_short(value)} is not one of {_short(schema['enum'])}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: expected {_short(schema['const'])}"
    for err in (_combinators(value, schema, root, path), _object(value, schema, root, path), _array(value, schema, root, path)):
        if err:
            return err
    if isinstance(value, str):
        return _string(value, schema, path)
    if _TYPES["number"](value):
        return _number(value, schema, path)
    return None


def _combinators(value: Any, schema: dict[str, Any], root: Any, path: str) -> str | None:
    for sub in schema.get("allOf") or ():
        err = validate(value, sub, root, path)
        if err:
            return err
    any_of = schema.get("anyOf")
    if any_of and all(validate(value, sub, root, path) for sub in any_of):
        return f"{path}: matches none of anyOf"
    one_of = schema.get("oneOf")
    if one_of and sum(validate(value, sub, root, path) is None for sub in one_of) != 1:
        return f"{path}: must match exactly one of oneOf"
    if "not" in schema and validate(value, schema["not"], root, path) is None:
        return f"{path}: matches a schema it must not"
    return None


def _object(value: Any, schema: dict[str, Any], root: Any, path: str) -> str | None:
    if not isinstance(value, dict):
        return None
    props = schema.get("properties") or {}
    for name in schema.get("required") or ():
        if name not in value:
            return f"{path}: missing required property '{name}'"
    extra = schema.get("additionalProperties", True)
    for k, v in value.items():
        if k in props:
            err = validate(v, props[k], root, f"{path}.{k}")
        elif extra is False:
            return f"{path}: property '{k}' is not allowed"
        else:
            err = validate(v, extra, root, f"{path}.{k}") if isinstance(extra, dict) else None
        if err:
            return err
    n = len(value)
    if "minProperties" in schema and n < schema["minProperties"]:
        return f"{path}: fewer than {schema['minProperties']} properties"
    if "maxProperties" in schema and n > schema["maxProperties"]:
        return f"{path}: more than {schema['maxProperties']} properties"
    return None


def _array(value: Any, schema: dict[str, Any], root: Any, path: str) -> str | None:
    if not isinstance(value, list):
        return None
    prefix = schema.get("prefixItems") or (schema["items"] if isinstance(schema.get("items"), list) else [])
    for i, sub in enumerate(prefix[: len(value)]):
        err = validate(value[i], sub, root, f"{path}[{i}]")
        if err:
            return err
    items = schema.get("items")
    if isinstance(items, (dict, bool)):
        for i in range(len(prefix), len(value)):
            err = validate(value[i], items, root, f"{path}[{i}]")
            if err:
                return err
    if "minItems" in schema and len(value) < schema["minItems"]:
        return f"{path}: fewer than {schema['minItems']} items"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"{path}: more than {schema['maxItems']} items"
    if schema.get("uniqueItems") and len({orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in value}) != len(value):
        return f"{path}: items are not unique"
    return None


def _string(value: str, schema: dict[str, Any], path: str) -> str | None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"{path}: shorter than {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{path}: longer than {schema['maxLength']} characters"
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                return f"{path}: does not match the pattern {pattern!r}"
        except re.error:
            return None
    return None


def _number(value: float, schema: dict[str, Any], path: str) -> str | None:
    if "minimum" in schema and value < schema["minimum"]:
        return f"{path}: less than {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"{path}: more than {schema['maximum']}"
    if "exclusiveMinimum" in schema and isinstance(schema["exclusiveMinimum"], (int, float)) and value <= schema["exclusiveMinimum"]:
        return f"{path}: not more than {schema['exclusiveMinimum']}"
    if "exclusiveMaximum" in schema and isinstance(schema["exclusiveMaximum"], (int, float)) and value >= schema["exclusiveMaximum"]:
        return f"{path}: not less than {schema['exclusiveMaximum']}"
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and step > 0 and abs(value / step - round(value / step)) > 1e-9:
        return f"{path}: not a multiple of {step}"
    return None


def _resolve(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _type_name(v: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](v):
            return name
    return type(v).__name__


def _short(v: Any) -> str:
    s = orjson.dumps(v).decode()
    return s if len(s) <= 60 else s[:57] + "..."
