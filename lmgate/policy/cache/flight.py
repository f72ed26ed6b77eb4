"""Single-flight: identical requests in flight at once make one upstream call.

The first request for a key leads; the others wait until the leader has stored its answer (or
failed, or `wait_s` passed) and then look again. Per process; the Redis lock in the cache step
extends it across instances.
"""

from __future__ import annotations

import asyncio


class Flights:
    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._events)

    def lead(self, key: str) -> bool:
        """Become the leader for `key`, unless someone already is."""
        if key in self._events:
            return False
        self._events[key] = asyncio.Event()
        return True

    async def wait(self, key: str, timeout: float) -> bool:
        """Wait for the current leader of `key` (if any) to finish; False if `timeout` passed first."""
        event = self._events.get(key)
        if event is None:
            return True
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def done(self, key: str) -> None:
        event = self._events.pop(key, None)
        if event is not None:
            event.set()
