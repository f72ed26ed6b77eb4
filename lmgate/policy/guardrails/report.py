"""Guardrail decisions counted over ledger records, for a usage report grouped by check.

Works on UsageRecord objects or on ledger rows (mappings with a `guardrails` list, as the store
reads them back), so the admin API, the CLI and tests can share it.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def guardrail_rows(records: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per (check, action, where): how many requests it touched and how many matches."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in records:
        decisions = r.get("guardrails") if isinstance(r, Mapping) else getattr(r, "guardrails", None)
        for d in decisions or ():
            key = (str(d.get("check")), str(d.get("action")), str(d.get("where")))
            row = rows.get(key)
            if row is None:
                row = rows[key] = {"check": key[0], "action": key[1], "where": key[2], "requests": 0, "matches": 0}
            row["requests"] += 1
            row["matches"] += int(d.get("count", 1))
    return [rows[k] for k in sorted(rows)]
