"""Measure the ledger (not a test: run it by hand).

    python tests/store/measure_ledger.py [--records 50000] [--postgres]

Prints the cost of `submit` on the request path (µs per call, with the writer thread running)
and the sustained write rate (records per second from first submit to fully written) into a
fresh SQLite file and, with --postgres, into a scratch schema of the local PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from lmgate.config import LedgerConfig  # noqa: E402
from lmgate.store.ledger import SqlLedger  # noqa: E402
from lmgate.store.store import Store  # noqa: E402
from test_store import record  # noqa: E402


def measure(url: str, n: int, batch_size: int) -> tuple[float, float, float]:
    """(records/s while submitting and writing at once, records/s draining a full queue, µs per submit)."""
    store = Store(url)
    store.migrate()
    config = LedgerConfig(batch_size=batch_size, flush_interval_s=0.5)

    # 1. submitted while the writer runs (the submitting loop yields now and then, as an event loop does)
    records = [record(f"req_{uuid.uuid4().hex}", key_id=f"k{i % 50}", cost=0.001) for i in range(n)]
    ledger = SqlLedger(store, config, max_pending=n + 1)
    ledger.start()
    started = time.perf_counter()
    submit_s = 0.0
    for i in range(0, n, 1000):
        t = time.perf_counter()
        for r in records[i : i + 1000]:
            ledger.submit(r)
        submit_s += time.perf_counter() - t
        time.sleep(0.001)
    assert ledger.flush(600)
    live_rate = n / (time.perf_counter() - started)
    asyncio.run(ledger.stop())

    # 2. a full queue drained by the writer alone (its sustained rate)
    records = [record(f"req_{uuid.uuid4().hex}", key_id=f"k{i % 50}", cost=0.001) for i in range(n)]
    ledger = SqlLedger(store, config, max_pending=n + 1)
    for r in records:
        ledger.submit(r)
    started = time.perf_counter()
    ledger.start()
    assert ledger.flush(600)
    drain_rate = n / (time.perf_counter() - started)
    asyncio.run(ledger.stop())
    assert len(store.usage_records()) == 2 * n
    store.close()
    return live_rate, drain_rate, submit_s / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--postgres", action="store_true")
    args = p.parse_args()
    targets = [("sqlite", f"sqlite:///{tempfile.mkdtemp()}/measure.db")]
    schema = None
    if args.postgres:
        import psycopg

        schema = "lmgate_measure_" + uuid.uuid4().hex[:8]
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        targets.append(("postgresql", f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"))
    try:
        for name, url in targets:
            live, drain, submit_us = measure(url, args.records, args.batch_size)
            print(f"{name:10} {args.records} records, batch {args.batch_size}: {drain:,.0f} records/s draining a full queue, "
                  f"{live:,.0f} records/s while submitting; submit {submit_us:.2f} µs/call")
    finally:
        if schema:
            import psycopg

            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
