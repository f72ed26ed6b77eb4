"""The tables as the code queries them today (the migrations in migrations.py build them).

A change here needs a new numbered migration that brings an existing database to this shape;
released migrations are never edited.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

JSON = sa.JSON().with_variant(JSONB(), "postgresql")

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)

# Counters: `keys_version` is bumped in the same transaction as every key change, so a poller
# sees a change by reading one row and then fetches only the keys whose `version` is newer.
store_meta = sa.Table(
    "store_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # hex sha256; the raw key is never stored
    sa.Column("key_hint", sa.String(16), nullable=False),  # the first characters, to recognise a key in lists
    sa.Column("models", JSON, nullable=False),
    sa.Column("rpm", sa.Integer),
    sa.Column("tpm", sa.Integer),
    sa.Column("budget_usd", sa.Float),
    sa.Column("budget_period", sa.String(10), nullable=False),
    sa.Column("cache", sa.Boolean),
    sa.Column("guard", sa.SmallInteger),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False, index=True),
)

usage_ledger = sa.Table(
    "usage_ledger",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),  # unique: a record is never written twice
    sa.Column("ts", sa.Float, nullable=False),  # unix time at arrival
    sa.Column("day", sa.String(10), nullable=False),  # UTC date of ts, YYYY-MM-DD
    sa.Column("key_id", sa.String(40)),
    sa.Column("key_name", sa.String(200)),
    sa.Column("surface", sa.String(32), nullable=False),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("model", sa.String(200)),
    sa.Column("served_model", sa.String(200)),
    sa.Column("deployment", sa.String(200)),
    sa.Column("provider", sa.String(200)),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("cache_hit", sa.Boolean, nullable=False),
    sa.Column("cache_saved_usd", sa.Float, nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("app_name", sa.String(200)),
    sa.Column("options", JSON, nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("attempts", JSON, nullable=False),
    sa.Column("guardrails", JSON, nullable=False),
    sa.Index("ix_usage_ledger_ts", "ts"),
    sa.Index("ix_usage_ledger_key_ts", "key_id", "ts"),
    sa.Index("ix_usage_ledger_model_ts", "model", "ts"),
)

# Spend per key and period: "total", "d2025-01-31" (UTC day), "m2025-01" (UTC month). Kept by the
# ledger writer in the same transaction as the records it inserts, so it always equals the ledger.
key_spend = sa.Table(
    "key_spend",
    metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("period", sa.String(12), primary_key=True),
    sa.Column("spend_usd", sa.Float, nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
