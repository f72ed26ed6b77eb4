"""Keeps the in-memory KeyIndex in step with the keys table.

At start every stored key is loaded. Changes made through this instance's admin API are applied
at once (`apply`). Changes made elsewhere (the CLI on the database, another instance) are found
by polling one counter row every `interval_s` off the request path, then fetching only the keys
changed since. A Redis pub/sub listener (the scale-out issue) would call `apply` with the
changed rows, or `poll_now()`, on a notice; the polling stays as the fallback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable

from lmgate.policy.auth import KeyIndex
from lmgate.store.keyspec import KeyRow
from lmgate.store.store import Store

log = logging.getLogger("lmgate.store")


class KeySync:
    def __init__(self, store: Store, keys: KeyIndex, interval_s: float = 0.5) -> None:
        self.store = store
        self.keys = keys
        self.interval_s = interval_s
        self.version = -1
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def load_all(self) -> int:
        """Blocking: load every stored key (revoked ones too, so they are refused as revoked)."""
        version = self.store.keys_version()  # read first: a change racing this load is fetched again by the poll
        rows = self.store.keys_since(0)
        self.keys.replace_source("store", (r.record() for r in rows))
        self.version = max([version, *(r.version for r in rows)])
        return len(rows)

    async def start(self) -> None:
        await asyncio.to_thread(self.load_all)
        self._task = asyncio.create_task(self._poll_forever(), name="lmgate-keysync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    def apply(self, rows: Iterable[KeyRow]) -> None:
        """Put changed keys into the index (on the event loop)."""
        for row in rows:
            self.keys.put(row.record())

    async def poll_now(self) -> int:
        """Fetch and apply changes since the last seen version; returns how many keys changed."""
        version, rows = await asyncio.to_thread(self._changes)
        self.apply(rows)
        self.version = max([version, self.version, *(r.version for r in rows)])
        return len(rows)

    def _changes(self) -> tuple[int, list[KeyRow]]:
        version = self.store.keys_version()
        if version == self.version:
            return version, []
        return version, self.store.keys_since(self.version)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.poll_now()
                if self._failing:
                    log.warning("key refresh works again")
                    self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    log.error("key refresh failed (keeping the keys in memory, retrying): %s", exc)
                    self._failing = True
