"""Usage reports over the ledger: group by key, model, day, app or any metadata field, in a time range.

Metadata fields are read with the database's own JSON operator (SQLite `json_extract`,
PostgreSQL `->>`) through SQLAlchemy's JSON path, and compared as text on both.
"""

from __future__ import annotations

import calendar
import csv
import io
import re
import time
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from lmgate.errors import Unprocessable
from lmgate.store import schema as s
from lmgate.store.db import reading
from lmgate.store.store import Store

u = s.usage_ledger.c

# Named groups: output field -> column. Any other name is a metadata field.
COLUMN_GROUPS: dict[str, Any] = {
    "key": u.key_id,
    "model": u.model,
    "day": u.day,
    "month": sa.func.substr(u.day, 1, 7),
    "app": u.app_name,
    "served_model": u.served_model,
    "provider": u.provider,
    "deployment": u.deployment,
    "surface": u.surface,
    "endpoint": u.endpoint,
    "status": u.status,
}
METRICS = ("requests", "input_tokens", "output_tokens", "cost_usd", "cache_hits", "cache_saved_usd", "guardrail_requests")
# `group_by=guardrail` (alone): one row per guardrail check, action and direction.
GUARDRAIL_GROUP = "guardrail"
GUARDRAIL_COLUMNS = ("check", "action", "where", "requests", "matches")
_FIELD = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_group_by(value: str | None) -> list[str]:
    if not value:
        return []
    fields = [f.strip() for f in value.split(",") if f.strip()]
    if GUARDRAIL_GROUP in fields and len(fields) > 1:
        raise Unprocessable("group_by=guardrail cannot be combined with other groups", param="group_by")
    for f in fields:
        if f not in COLUMN_GROUPS and not _FIELD.match(f):
            raise Unprocessable(f"group_by field '{f}' is not a known group or a valid metadata field name", param="group_by")
    if len(set(fields)) != len(fields):
        raise Unprocessable("group_by names a field twice", param="group_by")
    return fields


def parse_time(value: str | None, name: str, *, end: bool = False, now: float | None = None) -> float | None:
    """Unix seconds, an ISO 8601 date or time (UTC unless it says), or an age like `24h`/`7d`.

    A bare date as `until` means the end of that day, so `--until 2025-01-31` includes the 31st.
    """
    if value is None or value == "":
        return None
    v = value.strip()
    m = _RELATIVE.match(v)
    if m:
        return (now if now is not None else time.time()) - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(v)
    except ValueError:
        pass
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            day = calendar.timegm(time.strptime(v, "%Y-%m-%d"))
            return float(day + 86400 if end else day)
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise Unprocessable(f"'{name}' must be unix seconds, an ISO 8601 date or time, or an age like 24h or 7d", param=name) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def usage_report(store: Store, group_by: list[str], since: float | None = None, until: float | None = None, key: str | None = None) -> list[dict[str, Any]]:
    """One row per group: the group fields, then requests, tokens, cost, cache hits and what they
    saved, and how many requests a guardrail acted on."""
    if group_by == [GUARDRAIL_GROUP]:
        return guardrail_report(store, since, until, key)
    groups = []
    for i, name in enumerate(group_by):
        expr = COLUMN_GROUPS.get(name)
        if expr is None:
            expr = s.usage_ledger.c["metadata"][name].as_string()
        groups.append(expr.label(f"g{i}"))
    q = sa.select(
        *groups,
        *([sa.func.max(u.key_name).label("key_name")] if "key" in group_by else []),
        sa.func.count().label("requests"),
        sa.func.coalesce(sa.func.sum(u.input_tokens), 0).label("input_tokens"),
        sa.func.coalesce(sa.func.sum(u.output_tokens), 0).label("output_tokens"),
        sa.func.coalesce(sa.func.sum(u.cost_usd), 0.0).label("cost_usd"),
        sa.func.coalesce(sa.func.sum(sa.case((u.cache_hit, 1), else_=0)), 0).label("cache_hits"),
        sa.func.coalesce(sa.func.sum(u.cache_saved_usd), 0.0).label("cache_saved_usd"),
        sa.func.coalesce(sa.func.sum(sa.case((sa.cast(u.guardrails, sa.Text) != "[]", 1), else_=0)), 0).label("guardrail_requests"),
    )
    q = _filtered(q, since, until, key)
    if groups:
        q = q.group_by(*groups).order_by(*(g.asc().nulls_first() for g in groups))  # one order on both databases
    out = []
    with reading(store.engine) as conn:
        for r in conn.execute(q).mappings():
            row: dict[str, Any] = {}
            for i, name in enumerate(group_by):
                if name == "key":
                    row["key"] = r["key_name"]
                    row["key_id"] = r[f"g{i}"]
                else:
                    row[name] = r[f"g{i}"]
            row["requests"] = int(r["requests"])
            row["input_tokens"] = int(r["input_tokens"])
            row["output_tokens"] = int(r["output_tokens"])
            row["cost_usd"] = round(float(r["cost_usd"]), 10)
            row["cache_hits"] = int(r["cache_hits"])
            row["cache_saved_usd"] = round(float(r["cache_saved_usd"]), 10)
            row["guardrail_requests"] = int(r["guardrail_requests"])
            out.append(row)
    if not groups and out and out[0]["requests"] == 0:
        out[0]["cost_usd"] = 0.0
    return out


def _filtered(q: Any, since: float | None, until: float | None, key: str | None) -> Any:
    if since is not None:
        q = q.where(u.ts >= since)
    if until is not None:
        q = q.where(u.ts < until)
    if key is not None:
        q = q.where(sa.or_(u.key_id == key, u.key_name == key))
    return q


def guardrail_report(store: Store, since: float | None, until: float | None, key: str | None) -> list[dict[str, Any]]:
    """Guardrail decisions per check, action and direction: requests touched and matches."""
    from lmgate.policy.guardrails.report import guardrail_rows

    q = _filtered(sa.select(u.guardrails).where(sa.cast(u.guardrails, sa.Text) != "[]"), since, until, key)
    with reading(store.engine) as conn:
        decisions = [{"guardrails": r[0]} for r in conn.execute(q)]
    return guardrail_rows(decisions)


def columns_of(group_by: list[str]) -> list[str]:
    if group_by == [GUARDRAIL_GROUP]:
        return list(GUARDRAIL_COLUMNS)
    cols: list[str] = []
    for name in group_by:
        cols.extend(["key", "key_id"] if name == "key" else [name])
    return cols + list(METRICS)


def to_csv(rows: list[dict[str, Any]], group_by: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns_of(group_by), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()
