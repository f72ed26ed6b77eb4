"""The response cache: exact-match and opt-in semantic, in memory or in Redis (see step.py)."""

from lmgate.policy.cache.config import CacheConfig, SemanticConfig, load_cache_config
from lmgate.policy.cache.step import CacheStep

__all__ = ["CacheConfig", "CacheStep", "SemanticConfig", "load_cache_config"]
