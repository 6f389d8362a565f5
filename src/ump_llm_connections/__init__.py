"""ump-llm-connections: a self-hosted manager and gateway for LLM connections."""

__version__ = "0.1.0"
