"""The store: keys (hashed), the usage ledger and spend, over one SQLAlchemy Core layer.

Every method is synchronous and may block on the database: call it from a thread
(`asyncio.to_thread`, the ledger writer's thread), never on the event loop.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from itertools import chain
from typing import Any, Iterable, Iterator, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lmgate.errors import BadRequest, NotFound
from lmgate.policy.auth import hash_key
from lmgate.policy.periods import TOTAL, day_id, period_ids
from lmgate.store import schema as s
from lmgate.store.db import create_engine, reading, redact_url, to_json, upsert, writing
from lmgate.store.keyspec import HINT_CHARS, KeyCreate, KeyRow, new_key_id, new_raw_key
from lmgate.store.migrations import migrate
from lmgate.types import UsageRecord

log = logging.getLogger("lmgate.store")

_KEY_COLUMNS = [c.name for c in s.api_keys.columns]


class DuplicateKeyName(BadRequest):
    code = "duplicate_key_name"


class KeyRevoked(BadRequest):
    code = "key_revoked"


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.dialect = self.engine.dialect.name
        self._usage_insert, self._usage_existing = _usage_sql(self.dialect, self.engine.dialect.identifier_preparer.quote)
        ins = upsert(self.engine, s.key_spend)
        self._spend_upsert = ins.on_conflict_do_update(
            index_elements=["key_id", "period"],
            set_={
                "spend_usd": s.key_spend.c.spend_usd + ins.excluded.spend_usd,
                "requests": s.key_spend.c.requests + ins.excluded.requests,
                "updated_at": ins.excluded.updated_at,
            },
        )

    def __repr__(self) -> str:
        return f"Store({redact_url(self.url)!r})"

    def migrate(self) -> int:
        return migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- keys

    def create_key(self, spec: KeyCreate, raw_key: str | None = None) -> tuple[KeyRow, str]:
        """A new key; returns the row and the raw key (the only time it exists)."""
        raw = raw_key or new_raw_key()
        now = time.time()
        with writing(self.engine) as conn:
            self._refuse_taken_name(conn, spec.name, None)
            version = self._bump(conn)
            values = {
                "id": new_key_id(),
                "name": spec.name,
                "key_hash": hash_key(raw),
                "key_hint": raw[:HINT_CHARS],
                "models": list(spec.models),
                "rpm": spec.rpm,
                "tpm": spec.tpm,
                "budget_usd": spec.budget_usd,
                "budget_period": spec.budget_period,
                "cache": spec.cache,
                "guard": spec.guard,
                "metadata": dict(spec.metadata),
                "expires_at": spec.expires_at,
                "revoked": False,
                "revoked_at": None,
                "created_at": now,
                "updated_at": now,
                "version": version,
            }
            conn.execute(sa.insert(s.api_keys).values(**values))
        return KeyRow(**values), raw

    def get_key(self, id_or_name: str) -> KeyRow:
        with reading(self.engine) as conn:
            return self._find(conn, id_or_name)

    def list_keys(self, include_revoked: bool = False) -> list[KeyRow]:
        q = sa.select(s.api_keys).order_by(s.api_keys.c.created_at, s.api_keys.c.id)
        if not include_revoked:
            q = q.where(s.api_keys.c.revoked == sa.false())
        with reading(self.engine) as conn:
            return [_row(r) for r in conn.execute(q).mappings()]

    def update_key(self, id_or_name: str, changes: dict[str, Any]) -> KeyRow:
        with writing(self.engine) as conn:
            row = self._find(conn, id_or_name)
            if row.revoked:
                raise KeyRevoked(f"the key '{row.name}' is revoked and cannot be changed")
            if not changes:
                return row
            if "name" in changes and changes["name"] != row.name:
                self._refuse_taken_name(conn, changes["name"], row.id)
            values = dict(changes, updated_at=time.time(), version=self._bump(conn))
            conn.execute(sa.update(s.api_keys).where(s.api_keys.c.id == row.id).values(**values))
            return self._find(conn, row.id)

    def revoke_key(self, id_or_name: str) -> KeyRow:
        """Revoke (idempotent): the row stays, so the ledger's key ids keep their meaning."""
        with writing(self.engine) as conn:
            row = self._find(conn, id_or_name)
            if row.revoked:
                return row
            now = time.time()
            conn.execute(
                sa.update(s.api_keys)
                .where(s.api_keys.c.id == row.id)
                .values(revoked=True, revoked_at=now, updated_at=now, version=self._bump(conn))
            )
            return self._find(conn, row.id)

    def keys_version(self) -> int:
        """One cheap read: changes whenever any key changes (pollers compare it)."""
        with reading(self.engine) as conn:
            return int(conn.execute(sa.select(s.store_meta.c.value).where(s.store_meta.c.name == "keys_version")).scalar_one())

    def keys_since(self, version: int) -> list[KeyRow]:
        """Every key (revoked too) changed after `version`; 0 gives all."""
        q = sa.select(s.api_keys).where(s.api_keys.c.version > version).order_by(s.api_keys.c.version)
        with reading(self.engine) as conn:
            return [_row(r) for r in conn.execute(q).mappings()]

    def _find(self, conn: Connection, id_or_name: str) -> KeyRow:
        k = s.api_keys.c
        found = conn.execute(sa.select(s.api_keys).where(k.id == id_or_name)).mappings().first()
        if found is None:
            found = conn.execute(sa.select(s.api_keys).where(k.name == id_or_name)).mappings().first()
        if found is None:
            raise NotFound(f"no key with id or name '{id_or_name}'", code="key_not_found")
        return _row(found)

    def _refuse_taken_name(self, conn: Connection, name: str, own_id: str | None) -> None:
        k = s.api_keys.c
        other = conn.execute(sa.select(k.id).where(k.name == name)).scalar()
        if other is not None and other != own_id:
            raise DuplicateKeyName(f"a key named '{name}' already exists", param="name")

    def _bump(self, conn: Connection) -> int:
        m = s.store_meta.c
        stmt = sa.update(s.store_meta).where(m.name == "keys_version").values(value=m.value + 1).returning(m.value)
        return int(conn.execute(stmt).scalar_one())

    # ---------------------------------------------------------------- ledger and spend

    def write_usage(self, records: Sequence[UsageRecord]) -> int:
        """Insert records (a request id already present is skipped) and add their cost to the
        spend table, in one transaction; returns how many were new. Safe to repeat after a
        failure whose commit may or may not have happened.

        Rows go straight to the driver's executemany (no per-row SQLAlchemy processing): this is
        the ledger's hot loop. Which ids are new is read first, inside the write transaction
        (SQLite holds its write lock from BEGIN IMMEDIATE; on PostgreSQL only this writer thread
        writes a given request id), and ON CONFLICT DO NOTHING stays as the final guard.
        """
        unique: dict[str, UsageRecord] = {}
        for r in records:
            unique.setdefault(r.request_id, r)
        if not unique:
            return 0
        now = time.time()
        with writing(self.engine) as conn:
            ids = list(unique)
            if self.dialect == "postgresql":
                found = set(conn.exec_driver_sql(self._usage_existing, (ids,)).scalars())
            else:  # the ids as one JSON array: one statement text whatever the batch size
                found = set(conn.exec_driver_sql(self._usage_existing, (orjson.dumps(ids).decode(),)).scalars())
            new = [r for rid, r in unique.items() if rid not in found]
            if not new:
                return 0
            self._insert_usage(conn, [_usage_row(r) for r in new])
            spend: dict[tuple[str, str], list[float]] = {}
            for r in new:
                if r.key_id is None:
                    continue
                for period in period_ids(r.ts):
                    acc = spend.setdefault((r.key_id, period), [0.0, 0])
                    acc[0] += r.cost_usd
                    acc[1] += 1
            if spend:
                rows = [(k, p, usd, n, now) for (k, p), (usd, n) in sorted(spend.items())]  # one lock order for every writer
                if self.dialect == "postgresql":
                    conn.execute(self._spend_upsert, [dict(zip(_SPEND_COLUMNS, row)) for row in rows])
                else:
                    for part in _sqlite_parts(rows):
                        conn.exec_driver_sql(_sqlite_spend_upsert(len(part)), tuple(chain.from_iterable(part)))
        return len(new)

    def _insert_usage(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """PostgreSQL: the driver's executemany (pipelined). SQLite: multi-row INSERTs, because the
        sqlite3 module releases and retakes the GIL around every statement it steps: one row per
        statement meant a GIL hand-off per record between this thread and the event loop."""
        if self.dialect == "postgresql":
            conn.exec_driver_sql(self._usage_insert, rows)
            return
        for part in _sqlite_parts(rows):
            conn.exec_driver_sql(_sqlite_usage_insert(len(part)), tuple(chain.from_iterable(part)))

    def load_spend(self, now: float) -> dict[str, dict[str, float]]:
        """Spend per key for the periods containing `now`: {key_id: {"total"|"d..."|"m...": usd}}."""
        c = s.key_spend.c
        q = sa.select(c.key_id, c.period, c.spend_usd).where(c.period.in_(period_ids(now)))
        out: dict[str, dict[str, float]] = {}
        with reading(self.engine) as conn:
            for key_id, period, usd in conn.execute(q):
                out.setdefault(key_id, {})[period] = float(usd)
        return out

    def spend_of(self, key_id: str, period: str = TOTAL) -> float:
        c = s.key_spend.c
        with reading(self.engine) as conn:
            return float(conn.execute(sa.select(c.spend_usd).where(c.key_id == key_id, c.period == period)).scalar() or 0.0)

    def usage_records(self, request_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Ledger rows as dicts (for tests and exports)."""
        q = sa.select(s.usage_ledger).order_by(s.usage_ledger.c.ts)
        if request_ids is not None:
            q = q.where(s.usage_ledger.c.request_id.in_(list(request_ids)))
        with reading(self.engine) as conn:
            return [dict(r) for r in conn.execute(q).mappings()]


def _row(m: Any) -> KeyRow:
    return KeyRow(**{name: m[name] for name in _KEY_COLUMNS})


_JSON_COLUMNS = frozenset({"options", "metadata", "attempts", "guardrails"})
_USAGE_COLUMNS = [c.name for c in s.usage_ledger.columns]


def _usage_sql(dialect: str, quote: Any) -> tuple[str, str]:
    """PostgreSQL's ledger INSERT (for executemany) and the "which of these ids exist" query."""
    cols = ", ".join(quote(c) for c in _USAGE_COLUMNS)
    if dialect == "postgresql":
        marks = ", ".join("%s::jsonb" if c in _JSON_COLUMNS else "%s" for c in _USAGE_COLUMNS)
        insert = f"INSERT INTO usage_ledger ({cols}) VALUES ({marks}) ON CONFLICT (request_id) DO NOTHING"
        return insert, "SELECT request_id FROM usage_ledger WHERE request_id = ANY(%s)"
    return "", "SELECT request_id FROM usage_ledger WHERE request_id IN (SELECT value FROM json_each(?))"


# Rows per SQLite statement: a few fixed sizes, so the driver's statement cache keeps each one
# prepared (a statement with a thousand placeholders costs more to parse than to run). 256 rows of
# 28 columns stay under SQLite's bound-parameter limit of 32766 (3.32 and later).
_SQLITE_PART_SIZES = (256, 64, 16, 4, 1) if sqlite3.sqlite_version_info >= (3, 32) else (32, 8, 2, 1)


def _sqlite_parts(rows: list[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    """The rows cut greedily into parts of the fixed sizes."""
    start = 0
    for size in _SQLITE_PART_SIZES:
        while len(rows) - start >= size:
            yield rows[start : start + size]
            start += size


@functools.lru_cache(maxsize=8)
def _sqlite_usage_insert(rows: int) -> str:
    cols = ", ".join(f'"{c}"' for c in _USAGE_COLUMNS)
    values = ", ".join(["(" + ", ".join("?" * len(_USAGE_COLUMNS)) + ")"] * rows)
    return f"INSERT INTO usage_ledger ({cols}) VALUES {values} ON CONFLICT (request_id) DO NOTHING"


_SPEND_COLUMNS = ("key_id", "period", "spend_usd", "requests", "updated_at")


@functools.lru_cache(maxsize=8)
def _sqlite_spend_upsert(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO key_spend ({', '.join(_SPEND_COLUMNS)}) VALUES {values} ON CONFLICT (key_id, period) DO UPDATE SET "
        "spend_usd = key_spend.spend_usd + excluded.spend_usd, requests = key_spend.requests + excluded.requests, "
        "updated_at = excluded.updated_at"
    )


def _usage_row(r: UsageRecord) -> tuple[Any, ...]:
    """One ledger row in _USAGE_COLUMNS order, JSON columns serialised."""
    return (
        r.request_id,
        r.ts,
        day_id(r.ts)[1:],  # "d2025-01-31" -> "2025-01-31", cached per day
        r.key_id,
        r.key_name,
        r.surface,
        r.endpoint,
        r.model,
        r.served_model,
        r.deployment,
        r.provider,
        r.status,
        r.input_tokens,
        r.output_tokens,
        r.cached_tokens,
        r.reasoning_tokens,
        r.cost_usd,
        r.latency_ms,
        r.ttft_ms,
        bool(r.stream),
        bool(r.cache_hit),
        r.cache_saved_usd,
        r.error_code,
        r.app_name,
        to_json(r.options) if r.options else "{}",
        to_json(r.metadata) if r.metadata else "{}",
        to_json(r.attempts) if r.attempts else "[]",
        to_json(r.guardrails) if r.guardrails else "[]",
    )
