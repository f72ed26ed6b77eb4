"""Fixtures for the store: SQLite files in tmp_path, a private PostgreSQL schema per test, and
gateways with the store served on loopback."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import pytest

from lmgate.app import gateway_with_store
from lmgate.config import parse_config
from lmgate.testing import RunningGateway, serve_app

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
MASTER = "mk-test-master-key"


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
serve = serve_app


def store_config(database: str, sim_url: str, extra: str = "", master_key: str | None = MASTER) -> str:
    return f"""
database: "{database}"
{f'master_key: {master_key}' if master_key else ''}
providers:
  sim: {{type: openai, base_url: "{sim_url}/v1", api_key: sk-upstream-secret}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: priced
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
    pricing: {{input: 1000, output: 1000, unit: 1M tokens}}
    max_output_tokens: 50
ledger: {{flush_interval_s: 0.05}}
{extra}
"""


@pytest.fixture
def store_gateway(sim: Any) -> Iterator[Any]:
    """Start gateways with the store from (database URL, extra YAML); all stopped at the end."""
    started: list[Served] = []

    def make(database: str, extra: str = "", master_key: str | None = MASTER) -> Served:
        app = gateway_with_store(parse_config(store_config(database, sim.base_url, extra, master_key)))
        s = serve(app)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
