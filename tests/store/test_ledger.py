"""The batched ledger writer on a real SQLite file: batching, retry while the database fails,
no duplicates after an unclear commit, bounded memory, drain on stop."""

from __future__ import annotations

import time
from typing import Sequence

import pytest

from lmgate.config import LedgerConfig
from lmgate.store.ledger import SqlLedger
from lmgate.store.store import Store
from lmgate.types import UsageRecord

from test_store import record


class FlakyStore(Store):
    """Fails the next `fail` writes; with `after_commit` the write happens, then the error comes."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.fail = 0
        self.after_commit = False
        self.calls = 0

    def write_usage(self, records: Sequence[UsageRecord]) -> int:
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            if self.after_commit:
                super().write_usage(records)
            raise ConnectionError("database went away")
        return super().write_usage(records)


@pytest.fixture
def store(tmp_path) -> FlakyStore:  # type: ignore[no-untyped-def]
    s = FlakyStore(f"sqlite:///{tmp_path}/ledger.db")
    s.migrate()
    yield s
    s.close()


def wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


async def test_a_full_batch_is_written_without_waiting_for_the_interval(store: FlakyStore) -> None:
    ledger = SqlLedger(store, LedgerConfig(batch_size=10, flush_interval_s=60))
    ledger.start()
    for i in range(4):
        ledger.submit(record(f"small_{i}"))
    time.sleep(0.2)
    assert ledger.written == 0  # fewer than a batch waits for the interval (60 s here) ...
    for i in range(10):
        ledger.submit(record(f"big_{i}"))
    wait_for(lambda: ledger.written == 14)  # ... until a batch is full
    await ledger.stop()
    assert len(store.usage_records()) == 14


async def test_stop_drains_everything(store: FlakyStore) -> None:
    ledger = SqlLedger(store, LedgerConfig(batch_size=7, flush_interval_s=60))
    ledger.start()
    for i in range(30):
        ledger.submit(record(f"r{i}"))
    await ledger.stop()
    assert ledger.pending() == 0 and ledger.written == 30
    assert len(store.usage_records()) == 30


async def test_failures_are_retried_and_an_unclear_commit_is_not_counted_twice(store: FlakyStore) -> None:
    store.fail, store.after_commit = 2, True  # the first two attempts commit, then report an error
    ledger = SqlLedger(store, LedgerConfig(batch_size=100, flush_interval_s=0.02))
    ledger.start()
    for i in range(10):
        ledger.submit(record(f"r{i}", cost=0.1))
    assert ledger.flush(20)
    await ledger.stop()
    assert store.calls >= 3 and ledger.failures == 2
    assert sorted(r["request_id"] for r in store.usage_records()) == sorted(f"r{i}" for i in range(10))
    assert store.spend_of("k1") == pytest.approx(1.0)


async def test_records_wait_in_memory_while_the_database_is_down(store: FlakyStore) -> None:
    store.fail = 10**9
    ledger = SqlLedger(store, LedgerConfig(batch_size=5, flush_interval_s=0.02), max_pending=20)
    ledger.start()
    for i in range(25):
        ledger.submit(record(f"r{i}"))
    assert ledger.dropped == 5  # past the bound new records are dropped and counted, never blocking
    wait_for(lambda: store.calls >= 2)
    assert store.usage_records() == []
    store.fail = 0  # the database is back
    assert ledger.flush(20)
    await ledger.stop()
    assert len(store.usage_records()) == 20 and ledger.written == 20


async def test_the_drain_gives_up_after_its_timeout_and_says_how_many_were_lost(store: FlakyStore) -> None:
    store.fail = 10**9
    ledger = SqlLedger(store, LedgerConfig(batch_size=5, flush_interval_s=0.02), drain_timeout_s=0.3)
    ledger.start()
    for i in range(12):
        ledger.submit(record(f"r{i}"))
    await ledger.stop()
    assert ledger.lost == 12


async def test_submit_never_raises_and_stop_without_start_is_harmless(store: FlakyStore) -> None:
    ledger = SqlLedger(store)
    ledger.submit(None)  # type: ignore[arg-type]
    await ledger.stop()
