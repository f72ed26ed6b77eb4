"""Provider types by name: adding a provider is one module and one line here."""

from __future__ import annotations

from lmgate.providers.anthropic import AnthropicProvider
from lmgate.providers.azure import AzureProvider
from lmgate.providers.base import Provider
from lmgate.providers.bedrock import BedrockProvider
from lmgate.providers.cohere import CohereProvider
from lmgate.providers.gemini import GeminiProvider
from lmgate.providers.openai import OpenAIProvider
from lmgate.providers.vertex import VertexProvider

PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "azure": AzureProvider,
    "gemini": GeminiProvider,
    "vertex": VertexProvider,
    "cohere": CohereProvider,
    "anthropic": AnthropicProvider,
    "bedrock": BedrockProvider,
}
