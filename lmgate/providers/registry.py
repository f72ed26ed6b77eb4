"""Provider types by name: adding a provider is one module and one line here."""

from __future__ import annotations

from lmgate.providers.base import Provider
from lmgate.providers.openai import OpenAIProvider

PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
}
