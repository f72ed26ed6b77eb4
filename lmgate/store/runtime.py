"""The store's parts a serving gateway runs: the SQL ledger writer, key sync and the admin service,
started with the server (migrations, keys, spend) and stopped with it (ledger drained last)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from lmgate.config import Config
from lmgate.policy.auth import KeyIndex
from lmgate.policy.limits import LimitsStep
from lmgate.policy.step import Step
from lmgate.store.keysync import KeySync
from lmgate.store.ledger import SqlLedger
from lmgate.store.service import AdminService
from lmgate.store.store import Store


class _Lifecycle(Protocol):
    starts: list[Any]
    stops: list[Any]


class StoreRuntime:
    def __init__(self, config: Config, *, store: Store | None = None, key_poll_s: float = 0.5) -> None:
        self.config = config
        self.store = store if store is not None else Store(config.database)
        self.ledger = SqlLedger(self.store, config.ledger)
        self.key_poll_s = key_poll_s
        self.keysync: KeySync | None = None
        self.limits: LimitsStep | None = None
        self.admin: AdminService | None = None

    def attach(self, keys: KeyIndex, steps: list[Step], lifecycle: _Lifecycle) -> AdminService:
        """Wire into a Gateway: its key index, its limits step, its start and stop lists."""
        self.limits = next((s for s in steps if isinstance(s, LimitsStep)), None)
        self.keysync = KeySync(self.store, keys, self.key_poll_s)
        self.admin = AdminService(self.store, self.keysync, keys, self.limits, [k.name for k in self.config.keys])
        lifecycle.starts.append(self.start)
        lifecycle.stops.insert(0, self.stop)  # stops run in reverse: this one last, after the HTTP pools
        return self.admin

    async def start(self) -> None:
        await asyncio.to_thread(self.store.migrate)
        assert self.keysync is not None, "attach() first"
        await self.keysync.start()
        if self.limits is not None:
            self.limits.backend.load_spend(await asyncio.to_thread(self.store.load_spend, time.time()))
        self.ledger.start()

    async def stop(self) -> None:
        if self.keysync is not None:
            await self.keysync.stop()
        await self.ledger.stop()
        await asyncio.to_thread(self.store.close)
