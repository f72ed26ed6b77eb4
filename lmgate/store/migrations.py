"""Numbered migrations, applied in order on start; `schema_version` records each one applied.

Runs inside one write transaction under a lock (PostgreSQL advisory lock, SQLite's write lock),
so several workers or instances starting together apply each migration once. DDL is
transactional on both databases: a failed migration leaves the schema as it was.

Migrations 1-3 create tables exactly as schema.py describes them today. When a table changes,
copy its old definition into the migration that created it, then add migration N+1 (ALTER ...)
and change schema.py; tests/store/test_migrations.py checks a fresh database matches schema.py.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lmgate.store import schema as s
from lmgate.store.db import StoreError, writing

log = logging.getLogger("lmgate.store")

_PG_LOCK_ID = 0x6C6D6761  # "lmga": the advisory lock that serialises migrations


def _m1_keys(conn: Connection) -> None:
    s.store_meta.create(conn)
    s.api_keys.create(conn)
    conn.execute(sa.insert(s.store_meta).values(name="keys_version", value=0))


def _m2_usage_ledger(conn: Connection) -> None:
    s.usage_ledger.create(conn)


def _m3_key_spend(conn: Connection) -> None:
    s.key_spend.create(conn)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "keys and the keys_version counter", _m1_keys),
    (2, "usage ledger", _m2_usage_ledger),
    (3, "spend per key and period", _m3_key_spend),
]

LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(s.schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine) -> int:
    """Bring the database to LATEST; returns the version it is at."""
    with writing(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        s.schema_version.create(conn, checkfirst=True)
        version = current_version(conn)
        if version > LATEST:
            raise StoreError(f"the database schema is at version {version}, newer than this lmgate knows ({LATEST}); upgrade lmgate")
        for number, name, apply in MIGRATIONS:
            if number <= version:
                continue
            apply(conn)
            conn.execute(sa.insert(s.schema_version).values(version=number, name=name, applied_at=time.time()))
            log.info("database migration %d applied: %s", number, name)
            version = number
        return version
