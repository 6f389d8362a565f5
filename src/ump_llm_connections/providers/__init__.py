"""Provider adapters, one per wire format, behind one interface (``base.Adapter``).

Groq, Together, Azure, vLLM, TGI, LiteLLM and llama.cpp are data on the OpenAI-compatible
adapter, not modules of their own. Bedrock (``bedrock.py``) loads botocore on its first call.
"""

from __future__ import annotations

import aiohttp

from ump_llm_connections.providers.anthropic import AnthropicAdapter
from ump_llm_connections.providers.base import Adapter
from ump_llm_connections.providers.bedrock import BedrockAdapter
from ump_llm_connections.providers.google import GoogleAdapter
from ump_llm_connections.providers.ollama import OllamaAdapter
from ump_llm_connections.providers.openai_compat import OpenAICompatAdapter
from ump_llm_connections.providers.target import Target

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AnthropicAdapter",
    "BedrockAdapter",
    "GoogleAdapter",
    "OllamaAdapter",
    "OpenAICompatAdapter",
    "Target",
    "adapter_for",
]

ADAPTERS: dict[str, type[Adapter]] = {
    cls.api_format: cls
    for cls in (
        OpenAICompatAdapter,
        AnthropicAdapter,
        GoogleAdapter,
        OllamaAdapter,
        BedrockAdapter,
    )
}


def adapter_for(target: Target, http: aiohttp.ClientSession) -> Adapter:
    return ADAPTERS[target.api_format](target, http)
