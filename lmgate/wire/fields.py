"""Typed reads of inbound JSON fields: a wrong type is a clear 422 naming the field."""

from __future__ import annotations

from typing import Any

from lmgate.errors import BadRequest, Unprocessable

_MISSING = object()


def require(body: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    value = body.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise BadRequest(f"missing required field '{where}{key}'", code="missing_field", param=f"{where}{key}")
    return check(value, key, kind, where)


def optional(body: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    value = body.get(key)
    if value is None:
        return None
    return check(value, key, kind, where)


def check(value: Any, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass in Python; a JSON true is never a number.
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    elif float in kinds and isinstance(value, int):
        ok = True
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join(_json_name(k) for k in kinds)
        raise Unprocessable(f"field '{where}{key}' must be {names}", code="invalid_type", param=f"{where}{key}")
    return value


def number_in(body: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    value = optional(body, key, float)
    if value is not None and not (lo <= value <= hi):
        raise Unprocessable(f"field '{key}' must be between {lo} and {hi}", code="invalid_value", param=key)
    return value


def positive_int(body: dict[str, Any], key: str) -> int | None:
    value = optional(body, key, int)
    if value is not None and value < 1:
        raise Unprocessable(f"field '{key}' must be at least 1", code="invalid_value", param=key)
    return value


def _json_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array", dict: "an object"}.get(
        kind, kind.__name__
    )
