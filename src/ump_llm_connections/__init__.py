"""ump-llm-connections: a self-hosted manager and gateway for LLM connections."""

__all__ = ["__version__"]

__version__ = "0.1.0"
