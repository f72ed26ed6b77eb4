"""The batched ledger writer: `submit` is a deque append on the request path; a thread writes.

- Batches of `ledger.batch_size` are written as soon as that many wait, else every
  `ledger.flush_interval_s`.
- If the database fails, the batch is kept and retried with backoff (0.1 s doubling to 5 s);
  new records keep queueing. Re-writing a batch whose commit did in fact happen is harmless:
  request ids are unique and spend is only added for rows really inserted.
- Memory is bounded by `max_pending` queued records (default 100,000, about 100 MB). Past it,
  new records are dropped and counted (`dropped`), with an error in the log each time the count
  grows; nothing blocks and the requests themselves are still served.
- `stop()` (the Gateway's lifecycle.stops, run by uvicorn's lifespan shutdown on SIGTERM)
  drains everything; if the database stays down it keeps trying for `drain_timeout_s`, then
  logs how many records it could not write.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque

from lmgate.config import LedgerConfig
from lmgate.store.store import Store
from lmgate.types import UsageRecord

log = logging.getLogger("lmgate.ledger")

_BACKOFF_START_S = 0.1
_BACKOFF_MAX_S = 5.0


class SqlLedger:
    def __init__(self, store: Store, config: LedgerConfig | None = None, *, max_pending: int = 100_000, drain_timeout_s: float = 20.0) -> None:
        config = config or LedgerConfig()
        self.store = store
        self.batch_size = config.batch_size
        self.flush_interval_s = config.flush_interval_s
        self.max_pending = max_pending
        self.drain_timeout_s = drain_timeout_s
        self._queue: deque[UsageRecord] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._drain_deadline: float | None = None
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self.written = 0  # records inserted
        self.dropped = 0  # records refused past max_pending
        self.lost = 0  # records still unwritten when the drain gave up
        self.failures = 0  # failed write attempts

    # ---------------------------------------------------------------- request path

    def submit(self, record: UsageRecord) -> None:
        """Queue one record; never blocks, never raises."""
        try:
            q = self._queue
            if len(q) + self._in_flight >= self.max_pending:
                self.dropped += 1
                self._wake.set()
                return
            q.append(record)
            if len(q) >= self.batch_size and not self._wake.is_set():
                self._wake.set()
        except Exception:  # pragma: no cover - a deque append does not fail; the contract says never raise
            pass

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._drain_deadline = None
            self._thread = threading.Thread(target=self._run, name="lmgate-ledger", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        """Write everything queued, then end the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        await asyncio.to_thread(thread.join, self.drain_timeout_s + 10)
        self._thread = None

    def pending(self) -> int:
        return len(self._queue) + self._in_flight

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything submitted so far is written (tests, the CLI); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.005)
        return True

    # ---------------------------------------------------------------- the writer thread

    def _run(self) -> None:
        batch: list[UsageRecord] = []
        backoff = _BACKOFF_START_S
        reported_drops = 0
        while True:
            if not self._stopping and len(self._queue) < self.batch_size:
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()
            if self.dropped != reported_drops:
                log.error("ledger queue full (%d records): %d records dropped so far", self.max_pending, self.dropped)
                reported_drops = self.dropped
            # Write what waits now, a batch at a time; what arrives meanwhile waits for the next
            # round. Chasing it would write a stream of small batches under load, each with its
            # transaction and statements to pay for.
            todo = len(self._queue)
            while batch or todo > 0:
                if not batch:
                    batch = self._take()
                    todo -= len(batch)
                try:
                    self.written += self.store.write_usage(batch)
                except Exception as exc:
                    self.failures += 1
                    if self.failures == 1 or self.failures % 20 == 0:
                        log.error("ledger write failed (%s); %d records kept for retry", exc, self.pending())
                    if self._drain_expired():
                        self.lost = len(batch) + len(self._queue)
                        log.error("ledger: the database stayed unavailable; %d usage records were not written", self.lost)
                        return
                    time.sleep(min(backoff, 0.5) if self._stopping else backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
                    continue
                backoff = _BACKOFF_START_S
                batch = []
                self._in_flight = 0
            if self._stopping and not self._queue:
                return

    def _drain_expired(self) -> bool:
        if not self._stopping:
            return False
        if self._drain_deadline is None:
            self._drain_deadline = time.monotonic() + self.drain_timeout_s
        return time.monotonic() > self._drain_deadline

    def _take(self) -> list[UsageRecord]:
        q = self._queue
        n = min(len(q), self.batch_size)
        self._in_flight = n  # before popping, so pending() never reads low
        return [q.popleft() for _ in range(n)]
