"""Keys on the hot path: a dict from the key's hash to its record, held in memory.

Raw keys are never stored; lookups hash the presented key and compare digests in constant time.
The store (and Redis, across instances) replaces entries when keys change.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import time
from typing import Iterable

from lmgate.config import KeyConfig
from lmgate.errors import Forbidden, Unauthorized
from lmgate.types import KeyRecord


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class KeyIndex:
    """Every live key by hash. Swapped or patched whole-entry, never mutated in place."""

    def __init__(self, records: Iterable[KeyRecord] = ()) -> None:
        self._by_hash: dict[str, KeyRecord] = {r.key_hash: r for r in records}

    def authenticate(self, raw: str | None) -> KeyRecord:
        if not raw:
            raise Unauthorized("no API key was sent; send it as 'Authorization: Bearer KEY' or the surface's key header", code="missing_api_key")
        digest = hash_key(raw)
        record = self._by_hash.get(digest)
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise Unauthorized("the API key is not valid")
        if record.revoked:
            raise Unauthorized("the API key has been revoked", code="revoked_api_key")
        if record.expires_at is not None and record.expires_at < time.time():
            raise Unauthorized("the API key has expired", code="expired_api_key")
        return record

    def put(self, record: KeyRecord) -> None:
        self._by_hash[record.key_hash] = record

    def replace_source(self, source: str, records: Iterable[KeyRecord]) -> None:
        """Swap all keys of one source (config or store) at once, keeping the others."""
        kept = {h: r for h, r in self._by_hash.items() if r.source != source}
        kept.update({r.key_hash: r for r in records})
        self._by_hash = kept

    def __len__(self) -> int:
        return len(self._by_hash)


def model_allowed(key: KeyRecord, model: str) -> bool:
    return any(pattern == "*" or pattern == model or fnmatch.fnmatchcase(model, pattern) for pattern in key.models)


def check_model_allowed(key: KeyRecord, model: str) -> None:
    if model_allowed(key, model):
        return
    raise Forbidden(f"this key is not allowed to use the model '{model}'", param="model")


def records_from_config(keys: list[KeyConfig]) -> list[KeyRecord]:
    return [
        KeyRecord(
            id=f"cfg-{k.name}",
            name=k.name,
            key_hash=hash_key(k.key),
            models=tuple(k.models),
            rpm=k.rpm,
            tpm=k.tpm,
            budget_usd=k.budget_usd,
            budget_period=k.budget_period,
            cache=k.cache,
            guard=k.guard,
            metadata=dict(k.metadata),
            expires_at=k.expires_at,
            source="config",
        )
        for k in keys
    ]
