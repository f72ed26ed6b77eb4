"""Fixtures for the store: SQLite files in tmp_path, a private PostgreSQL schema per test, and
gateways with the store served on loopback."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import pytest

from lmgate.app import gateway_with_store
from lmgate.config import parse_config
from lmgate.testing import RunningGateway, serve_app

from store_kit import MASTER, store_config  # noqa: F401  (fixtures below use them)

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is not reachable: {exc}"


@pytest.fixture(scope="session")
def pg_reason() -> str | None:
    return _pg_available()


@pytest.fixture
def pg_url(pg_reason: str | None) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped after the test."""
    if pg_reason:
        pytest.skip(pg_reason)
    import psycopg

    schema = "lmgate_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/lmgate.db"
    return request.getfixturevalue("pg_url")


Served = RunningGateway


@pytest.fixture
def store_gateway(sim: Any) -> Iterator[Any]:
    """Start gateways with the store from (database URL, extra YAML); all stopped at the end."""
    started: list[Served] = []

    def make(database: str, extra: str = "", master_key: str | None = MASTER) -> Served:
        app = gateway_with_store(parse_config(store_config(database, sim.base_url, extra, master_key)))
        s = serve_app(app)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
