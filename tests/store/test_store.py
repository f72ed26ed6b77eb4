"""The SQL layer on SQLite files and PostgreSQL: migrations, keys, the ledger's idempotent writes, spend."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from lmgate.errors import NotFound
from lmgate.policy.auth import hash_key
from lmgate.policy.periods import day_id, month_id
from lmgate.store import schema
from lmgate.store.db import normalise_url
from lmgate.store.keyspec import KeyCreate, KeyUpdate, validate
from lmgate.store.migrations import LATEST, MIGRATIONS
from lmgate.store.store import DuplicateKeyName, KeyRevoked, Store
from lmgate.types import UsageRecord


def record(rid: str, key_id: str | None = "k1", cost: float = 0.5, ts: float | None = None, **kw: object) -> UsageRecord:
    fields = dict(
        request_id=rid,
        ts=ts if ts is not None else time.time(),
        key_id=key_id,
        key_name="alice",
        surface="openai",
        endpoint="chat",
        model="gpt-4o",
        served_model="gpt-4o",
        deployment="sim/gpt-4o",
        provider="sim",
        status=200,
        input_tokens=10,
        output_tokens=5,
        cached_tokens=2,
        reasoning_tokens=1,
        cost_usd=cost,
        latency_ms=12.5,
        ttft_ms=3.25,
        stream=True,
        cache_hit=False,
        cache_saved_usd=0.0,
        error_code=None,
        app_name="DSPY",
        options={"is_cache": 1, "use_guard": 2},
        metadata={"Bot_Id": "b1", "userid": "100", "is_system": True, "words": 12},
        attempts=[{"deployment": "sim/gpt-4o", "provider": "sim", "model": "gpt-4o", "status": 200, "latency_ms": 11.0, "error": None}],
        guardrails=[{"name": "pii", "action": "pass"}],
    )
    fields.update(kw)
    return UsageRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


def test_urls_pick_the_drivers() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_migrations_are_numbered_recorded_and_idempotent(store: Store) -> None:
    assert store.migrate() == LATEST
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.schema_version).order_by(schema.schema_version.c.version)).all()
    assert [r.version for r in rows] == [n for n, _, _ in MIGRATIONS]


def test_a_fresh_database_matches_schema_py(store: Store) -> None:
    """Guards the migration rule: migrations must build exactly what schema.py describes."""
    inspector = sa.inspect(store.engine)
    for table in schema.metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    indexes = {i["name"] for i in inspector.get_indexes("usage_ledger")}
    assert {"ix_usage_ledger_ts", "ix_usage_ledger_key_ts", "ix_usage_ledger_model_ts"} <= indexes


def test_concurrent_starts_migrate_once(db_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        s = Store(db_url)
        try:
            s.migrate()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = Store(db_url)
    with s.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.schema_version)).scalar() == LATEST
    s.close()


def test_key_lifecycle_and_version_counter(store: Store) -> None:
    v0 = store.keys_version()
    row, raw = store.create_key(validate(KeyCreate, {"name": "alice", "models": ["gpt-4o*"], "rpm": 10, "budget_usd": 2.5, "budget_period": "daily", "metadata": {"team": "search"}}))
    assert raw.startswith("lmg-") and len(raw) == 44
    assert row.key_hash == hash_key(raw) and row.key_hint == raw[:8]
    assert store.keys_version() == v0 + 1
    assert store.get_key("alice").id == row.id == store.get_key(row.id).id
    rec = store.get_key(row.id).record()
    assert rec.models == ("gpt-4o*",) and rec.rpm == 10 and rec.budget_period == "daily" and rec.source == "store"

    updated = store.update_key("alice", validate(KeyUpdate, {"rpm": None, "tpm": 500, "name": "alice2"}).changes())
    assert (updated.name, updated.rpm, updated.tpm) == ("alice2", None, 500)
    assert [r.id for r in store.keys_since(v0 + 1)] == [row.id]
    assert store.keys_since(store.keys_version()) == []

    with pytest.raises(DuplicateKeyName):
        store.create_key(validate(KeyCreate, {"name": "alice2"}))
    bob, _ = store.create_key(validate(KeyCreate, {"name": "bob"}))
    with pytest.raises(DuplicateKeyName):
        store.update_key(bob.id, {"name": "alice2"})

    revoked = store.revoke_key(row.id)
    assert revoked.revoked and revoked.revoked_at is not None
    assert store.revoke_key(row.id).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(KeyRevoked):
        store.update_key(row.id, {"rpm": 5})
    assert [r.name for r in store.list_keys()] == ["bob"]
    assert {r.name for r in store.list_keys(include_revoked=True)} == {"alice2", "bob"}
    with pytest.raises(NotFound):
        store.get_key("nobody")


def test_ledger_writes_every_field_once_and_counts_spend_once(store: Store) -> None:
    now = time.time()
    recs = [record(f"req_{i}", ts=now) for i in range(5)] + [record("req_nokey", key_id=None)]
    assert store.write_usage(recs) == 6
    # the same batch again (a retry after an unclear commit), plus a duplicate inside one batch
    assert store.write_usage(recs + [record("req_new", ts=now), record("req_new", ts=now)]) == 1

    rows = {r["request_id"]: r for r in store.usage_records()}
    assert len(rows) == 7
    r = rows["req_0"]
    for field in ("key_id", "key_name", "surface", "endpoint", "model", "served_model", "deployment", "provider", "status",
                  "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "ttft_ms",
                  "stream", "cache_hit", "cache_saved_usd", "error_code", "app_name", "options", "metadata", "attempts", "guardrails"):
        assert r[field] == getattr(recs[0], field), field
    assert r["day"] == time.strftime("%Y-%m-%d", time.gmtime(now))

    assert store.spend_of("k1") == pytest.approx(3.0)  # 6 records of k1 at 0.5, each once
    assert store.spend_of("k1", day_id(now)) == pytest.approx(3.0)
    spend = store.load_spend(now)
    assert spend["k1"] == {"total": pytest.approx(3.0), day_id(now): pytest.approx(3.0), month_id(now): pytest.approx(3.0)}
    assert store.load_spend(now + 40 * 86400)["k1"] == {"total": pytest.approx(3.0)}  # another day and month


def test_spend_per_period_follows_record_time(store: Store) -> None:
    jan = 1735732800.0  # 2025-01-01T12:00:00Z
    store.write_usage([record("a", ts=jan, cost=1.0), record("b", ts=jan + 86400, cost=2.0), record("c", ts=jan + 40 * 86400, cost=4.0)])
    assert store.spend_of("k1", "d2025-01-01") == 1.0
    assert store.spend_of("k1", "d2025-01-02") == 2.0
    assert store.spend_of("k1", "m2025-01") == 3.0
    assert store.spend_of("k1", "m2025-02") == 4.0
    assert store.spend_of("k1") == 7.0


def test_a_large_batch_with_many_keys_is_written_whole_and_a_partial_retry_adds_only_the_rest(store: Store) -> None:
    """Batches are cut into multi-row statements of fixed sizes (SQLite); none may be lost or doubled."""
    now = time.time()
    recs = [record(f"big_{i:04d}", key_id=f"k{i % 7}", cost=0.25, ts=now) for i in range(1000)]
    assert store.write_usage(recs[:333]) == 333
    assert store.write_usage(recs) == 667  # the first third is already there
    assert len(store.usage_records()) == 1000
    for k in range(7):
        mine = sum(1 for i in range(1000) if i % 7 == k)
        assert store.spend_of(f"k{k}") == pytest.approx(0.25 * mine)
        assert store.spend_of(f"k{k}", day_id(now)) == pytest.approx(0.25 * mine)


def test_sqlite_statements_come_in_a_few_fixed_sizes() -> None:
    from lmgate.store.store import _SQLITE_PART_SIZES, _sqlite_parts

    for n in (0, 1, 3, 5, 255, 256, 257, 500, 1000):
        rows = [(i,) for i in range(n)]
        parts = list(_sqlite_parts(rows))
        assert [r for p in parts for r in p] == rows
        assert {len(p) for p in parts} <= set(_SQLITE_PART_SIZES)
