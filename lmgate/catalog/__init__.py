"""Model catalog: prices in their three units, context, modalities, status; lookup, cost, token estimates."""

from lmgate.catalog.catalog import (
    Catalog,
    ModelInfo,
    Price,
    audio_cost_usd,
    cost_usd,
    image_cost_usd,
    reservation_usd,
)
from lmgate.catalog.tokens import count_chars, estimate_chat_tokens, estimate_tokens

__all__ = [
    "Catalog",
    "ModelInfo",
    "Price",
    "audio_cost_usd",
    "cost_usd",
    "count_chars",
    "estimate_chat_tokens",
    "estimate_tokens",
    "image_cost_usd",
    "reservation_usd",
]
