"""The memory backend's bounds (entries, bytes, TTL, LRU) and the Redis backend against a real Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest

from lmgate.policy.cache.backends import MemoryBackend, RedisBackend

REDIS_URL = os.environ.get("LMGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_up() -> bool:
    host, port = "127.0.0.1", 6379
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


needs_redis = pytest.mark.skipif(not redis_up(), reason="no Redis on 127.0.0.1:6379")


async def test_memory_lru_by_entries():
    b = MemoryBackend(max_entries=2, max_bytes=1000)
    await b.set("a", b"1", 60)
    await b.set("b", b"2", 60)
    assert await b.get("a") == b"1"  # a is now the most recent
    await b.set("c", b"3", 60)
    assert await b.get("b") is None and await b.get("a") == b"1" and await b.get("c") == b"3"


async def test_memory_bounded_by_bytes():
    b = MemoryBackend(max_entries=100, max_bytes=10)
    await b.set("a", b"12345", 60)
    await b.set("b", b"12345", 60)
    await b.set("c", b"123", 60)
    assert await b.get("a") is None and b.bytes <= 10
    await b.set("huge", b"x" * 11, 60)
    assert await b.get("huge") is None


async def test_memory_ttl():
    b = MemoryBackend(max_entries=10, max_bytes=1000)
    await b.set("a", b"1", 0.01)
    await asyncio.sleep(0.03)
    assert await b.get("a") is None and len(b) == 0


async def test_memory_replacing_an_entry_keeps_the_byte_count():
    b = MemoryBackend(max_entries=10, max_bytes=1000)
    await b.set("a", b"12345", 60)
    await b.set("a", b"12", 60)
    assert b.bytes == 2


async def test_memory_vectors_bounded_and_expiring():
    b = MemoryBackend(10, 1000, max_vectors=2)
    await b.add_vector("s", "k1", b"v1", 60)
    await b.add_vector("s", "k2", b"v2", 60)
    await b.add_vector("s", "k3", b"v3", 0.01)
    assert [k for k, _ in await b.vectors("s")] == ["k2", "k3"]
    await asyncio.sleep(0.03)
    assert [k for k, _ in await b.vectors("s")] == ["k2"]


@needs_redis
async def test_redis_entries_locks_and_vectors():
    b = RedisBackend(REDIS_URL, f"lmgate:test:{uuid.uuid4().hex}:", max_vectors=2)
    try:
        assert await b.get("k") is None
        await b.set("k", b"value", 5)
        assert await b.get("k") == b"value"
        ttl = await b.client().pttl(b.prefix + "e:k")
        assert 0 < ttl <= 5000
        assert await b.acquire("k", "me", 5) is True
        assert await b.acquire("k", "other", 5) is False and await b.locked("k")
        await b.release("k", "other")  # not the holder: no effect
        assert await b.locked("k")
        await b.release("k", "me")
        assert not await b.locked("k")
        for i in range(3):
            await b.add_vector("s", f"k{i}", bytes([i]) * 8, 60)
        assert len(await b.vectors("s")) == 2
        await b.drop_vector("s", "k2")
        assert [k for k, _ in await b.vectors("s")] == ["k1"]
        await b.delete("k")
        assert await b.get("k") is None
    finally:
        await b.client().delete(b.prefix + "v:s")
        await b.close()


async def test_redis_down_fails_open():
    b = RedisBackend("redis://127.0.0.1:1/0", "x:")
    try:
        assert await b.get("k") is None
        await b.set("k", b"v", 1)  # no exception
        assert await b.acquire("k", "me", 1) is True  # no lock service: everyone leads
        assert await b.vectors("s") == []
    finally:
        await b.close()
