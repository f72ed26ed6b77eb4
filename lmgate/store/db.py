"""Engines for the one SQL layer: SQLite (one file, WAL) or PostgreSQL (psycopg 3), same Core queries.

SQLite transactions are started by us (`BEGIN` / `BEGIN IMMEDIATE`) rather than by the sqlite3
module, so a write transaction takes the file's write lock at its start and waits `busy_timeout`
for it, instead of failing half-way when another process (the CLI, a second worker) writes too.
"""

from __future__ import annotations

import random
import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Iterator

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 10_000


class StoreError(Exception):
    """The database cannot be used as configured (bad URL, schema newer than this lmgate)."""


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean the psycopg 3 driver; SQLite URLs pass unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("sqlite:", "postgresql+psycopg:")):
        return url
    raise StoreError(f"unsupported database URL {redact_url(url)!r}: use sqlite:///FILE or postgresql://...")


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def to_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def create_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = sa.create_engine(
            url,
            json_serializer=to_json,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False},
            **({"poolclass": StaticPool} if memory else {}),
        )
        _sqlite_transactions(engine, wal=not memory)
        return engine
    return sa.create_engine(url, json_serializer=to_json, json_deserializer=orjson.loads, pool_pre_ping=True, pool_size=4, max_overflow=4)


def _sqlite_transactions(engine: Engine, wal: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # no implicit BEGIN by the driver; see the "begin" hook
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first: switching to WAL may wait for a lock
        if wal:
            _wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")  # durable at every commit in WAL except on power loss
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _wal(cur: Any) -> None:
    """Switch the file to WAL (persistent; a no-op once done). The switch needs a moment alone
    with the file and SQLite does not wait for it (busy_timeout does not apply), so retry."""
    for attempt in range(200):
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 199:
                raise
            time.sleep(0.01 + random.random() * 0.02)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction: takes SQLite's write lock up front; commits on success."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        with conn.begin():
            yield conn


def upsert(engine: Engine, table: sa.Table) -> Any:
    """The dialect's INSERT with ON CONFLICT support."""
    return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)
