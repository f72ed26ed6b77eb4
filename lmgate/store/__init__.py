"""Storage: keys (hashed), the usage ledger and spend in SQLite (one file, WAL) or PostgreSQL,
through one SQLAlchemy Core layer with numbered migrations; the batched ledger writer; the
key sync that keeps the in-memory KeyIndex current; the admin service and CLI behind them."""
