"""The per-request options of 004: `KEY/{...}` suffixes and the x-lmgate-* headers.

The suffix is a Python dict literal or JSON. It is parsed as data (JSON, else `ast.literal_eval`,
which builds literals only and runs nothing), under a size limit.
"""

from __future__ import annotations

import ast
from typing import Any

import orjson

from lmgate.errors import BadRequest, Unprocessable
from lmgate.types import KeyRecord, Options

_FLAG_TRUE = {"1", "true", "yes", "on"}
_FLAG_FALSE = {"0", "false", "no", "off"}


def split_key(value: str) -> tuple[str, str | None]:
    """`KEY/{...}` -> (KEY, "{...}"); a key without a suffix -> (KEY, None)."""
    cut = value.find("/{")
    if cut < 0:
        return value.strip(), None
    return value[:cut].strip(), value[cut + 1 :].strip()


def parse_suffix(suffix: str, limit: int) -> dict[str, Any]:
    if len(suffix) > limit:
        raise BadRequest(f"the key options are longer than {limit} bytes", code="invalid_key_options")
    try:
        data = orjson.loads(suffix)
    except orjson.JSONDecodeError:
        try:
            data = ast.literal_eval(suffix)
        except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
            raise BadRequest("the key options after '/' are neither JSON nor a Python dict literal", code="invalid_key_options") from None
    if not isinstance(data, dict):
        raise BadRequest("the key options after '/' must be a dict", code="invalid_key_options")
    return {str(k): v for k, v in data.items()}


def resolve_options(
    key: KeyRecord | None,
    suffix: dict[str, Any] | None,
    headers: dict[str, str],
    default_cache: bool,
    default_guard: int,
) -> Options:
    """Key defaults, then the key suffix, then headers: the later wins."""
    opts = Options(
        cache=default_cache if key is None or key.cache is None else key.cache,
        guard=default_guard if key is None or key.guard is None else key.guard,
    )
    if key is not None and key.metadata:
        opts.metadata.update(key.metadata)
    if suffix:
        _apply(opts, suffix, "key option")
    meta = headers.get("x-lmgate-metadata")
    if meta:
        try:
            parsed = orjson.loads(meta)
        except orjson.JSONDecodeError:
            raise BadRequest("x-lmgate-metadata must be a JSON object", code="invalid_metadata") from None
        if not isinstance(parsed, dict):
            raise BadRequest("x-lmgate-metadata must be a JSON object", code="invalid_metadata")
        _apply(opts, parsed, "x-lmgate-metadata")
    flag = headers.get("x-lmgate-cache")
    if flag is not None:
        opts.cache = _flag(flag, "x-lmgate-cache")
        opts.cache_set = True
    guard = headers.get("x-lmgate-guard")
    if guard is not None:
        opts.guard = _guard(guard, "x-lmgate-guard")
    cc = headers.get("cache-control")
    if cc and ("no-cache" in cc or "no-store" in cc):
        opts.cache, opts.cache_set = False, True
    return opts


def _apply(opts: Options, data: dict[str, Any], where: str) -> None:
    for k, v in data.items():
        if k == "is_cache":
            opts.cache = _flag(v, f"{where} is_cache")
            opts.cache_set = True
        elif k == "use_guard":
            opts.guard = _guard(v, f"{where} use_guard")
        elif k == "app_name":
            if v is not None and not isinstance(v, str):
                raise Unprocessable(f"{where} app_name must be a string", param="app_name")
            opts.app_name = v
        else:
            if not isinstance(v, (str, int, float, bool)) and v is not None:
                raise Unprocessable(f"{where} {k!r} must be a string, number or boolean", param=k)
            opts.metadata[k] = v


def _flag(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    s = str(v).strip().lower()
    if s in _FLAG_TRUE:
        return True
    if s in _FLAG_FALSE:
        return False
    raise Unprocessable(f"{where} must be 0 or 1", param=where.split()[-1])


def _guard(v: Any, where: str) -> int:
    try:
        g = int(v)
    except (TypeError, ValueError):
        g = -1
    if isinstance(v, bool) or g not in (0, 1, 2):
        raise Unprocessable(f"{where} must be 0, 1 or 2", param=where.split()[-1])
    return g
