"""Where cache entries live: process memory (LRU, bounded by count and bytes, TTL) or Redis.

Both speak the same small async interface. The Redis backend fails open: a Redis error is
logged and the request goes on as a miss, since a cache must never be the reason a call fails.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections import OrderedDict
from typing import Any, Protocol

log = logging.getLogger("lmgate.cache")


class CacheBackend(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def acquire(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take the cross-instance single-flight lock of `key` (memory: always granted)."""
        ...

    async def locked(self, key: str) -> bool: ...

    async def release(self, key: str, owner: str) -> None: ...

    async def add_vector(self, space: str, key: str, vector: bytes, ttl_s: float) -> None: ...

    async def vectors(self, space: str) -> list[tuple[str, bytes]]: ...

    async def drop_vector(self, space: str, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryBackend:
    """An LRU map of encoded entries; expired entries are dropped when met."""

    def __init__(self, max_entries: int, max_bytes: int, max_vectors: int = 10_000) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_vectors = max_vectors
        self.bytes = 0
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._vectors: dict[str, OrderedDict[str, tuple[float, bytes]]] = {}

    def __len__(self) -> int:
        return len(self._data)

    async def get(self, key: str) -> bytes | None:
        found = self._data.get(key)
        if found is None:
            return None
        if found[0] <= time.monotonic():
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return found[1]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._data:
            self._drop(key)
        self._data[key] = (time.monotonic() + ttl_s, value)
        self.bytes += len(value)
        while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._data)))

    async def delete(self, key: str) -> None:
        if key in self._data:
            self._drop(key)

    def _drop(self, key: str) -> None:
        _, value = self._data.pop(key)
        self.bytes -= len(value)

    async def acquire(self, key: str, owner: str, ttl_s: float) -> bool:
        return True

    async def locked(self, key: str) -> bool:
        return False

    async def release(self, key: str, owner: str) -> None:
        return None

    async def add_vector(self, space: str, key: str, vector: bytes, ttl_s: float) -> None:
        vecs = self._vectors.setdefault(space, OrderedDict())
        vecs[key] = (time.monotonic() + ttl_s, vector)
        vecs.move_to_end(key)
        while len(vecs) > self.max_vectors:
            vecs.popitem(last=False)

    async def vectors(self, space: str) -> list[tuple[str, bytes]]:
        vecs = self._vectors.get(space)
        if not vecs:
            return []
        now = time.monotonic()
        for k in [k for k, (exp, _) in vecs.items() if exp <= now]:
            del vecs[k]
        return [(k, v) for k, (_, v) in vecs.items()]

    async def drop_vector(self, space: str, key: str) -> None:
        vecs = self._vectors.get(space)
        if vecs is not None:
            vecs.pop(key, None)

    async def close(self) -> None:
        self._data.clear()
        self._vectors.clear()


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_EXPIRY = struct.Struct("<d")


class RedisBackend:
    """Entries as plain keys with a TTL (Redis's own maxmemory policy bounds the total); the
    single-flight lock as `SET NX PX`; semantic vectors as one hash per conversation context."""

    def __init__(self, url: str, prefix: str, max_vectors: int = 10_000) -> None:
        self.url = url
        self.prefix = prefix
        self.max_vectors = max_vectors
        self._client: Any = None
        self._warned = 0.0

    def client(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
        return self._client

    def _fail(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned > 10:  # one line per 10 s while Redis is down, not one per request
            self._warned = now
            log.warning("cache: redis %s failed (%s); going on without the cache", what, exc)

    async def get(self, key: str) -> bytes | None:
        try:
            return await self.client().get(self.prefix + "e:" + key)
        except Exception as exc:
            self._fail("get", exc)
            return None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        try:
            await self.client().set(self.prefix + "e:" + key, value, px=max(1, int(ttl_s * 1000)))
        except Exception as exc:
            self._fail("set", exc)

    async def delete(self, key: str) -> None:
        try:
            await self.client().delete(self.prefix + "e:" + key)
        except Exception as exc:
            self._fail("delete", exc)

    async def acquire(self, key: str, owner: str, ttl_s: float) -> bool:
        try:
            return bool(await self.client().set(self.prefix + "l:" + key, owner, nx=True, px=max(1, int(ttl_s * 1000))))
        except Exception as exc:
            self._fail("lock", exc)
            return True

    async def locked(self, key: str) -> bool:
        try:
            return bool(await self.client().exists(self.prefix + "l:" + key))
        except Exception as exc:
            self._fail("lock check", exc)
            return False

    async def release(self, key: str, owner: str) -> None:
        try:
            await self.client().eval(_RELEASE, 1, self.prefix + "l:" + key, owner)
        except Exception as exc:
            self._fail("unlock", exc)

    async def add_vector(self, space: str, key: str, vector: bytes, ttl_s: float) -> None:
        name = self.prefix + "v:" + space
        try:
            pipe = self.client().pipeline(transaction=False)
            pipe.hset(name, key, _EXPIRY.pack(time.time() + ttl_s) + vector)
            pipe.expire(name, max(1, int(ttl_s)))
            pipe.hlen(name)
            *_, size = await pipe.execute()
            if size > self.max_vectors:
                await self._prune(name)
        except Exception as exc:
            self._fail("vector add", exc)

    async def _prune(self, name: str) -> None:
        """Drop the entries closest to expiry until the hash is back under its bound."""
        items = await self.client().hgetall(name)
        ordered = sorted(items.items(), key=lambda kv: _EXPIRY.unpack_from(kv[1])[0])
        excess = len(ordered) - self.max_vectors
        if excess > 0:
            await self.client().hdel(name, *(k for k, _ in ordered[:excess]))

    async def vectors(self, space: str) -> list[tuple[str, bytes]]:
        name = self.prefix + "v:" + space
        try:
            items = await self.client().hgetall(name)
        except Exception as exc:
            self._fail("vector read", exc)
            return []
        now = time.time()
        out, stale = [], []
        for k, v in items.items():
            key = k.decode() if isinstance(k, bytes) else k
            if _EXPIRY.unpack_from(v)[0] <= now:
                stale.append(key)
            else:
                out.append((key, v[_EXPIRY.size :]))
        if stale:
            try:
                await self.client().hdel(name, *stale)
            except Exception as exc:
                self._fail("vector prune", exc)
        return out

    async def drop_vector(self, space: str, key: str) -> None:
        try:
            await self.client().hdel(self.prefix + "v:" + space, key)
        except Exception as exc:
            self._fail("vector drop", exc)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except Exception:
                pass


def lock_owner(request_id: str) -> str:
    """A lock value unique to this process and request, so only its holder releases it."""
    return f"{os.getpid()}:{request_id}"
