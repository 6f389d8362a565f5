"""ump-llm-connections: a self-hosted manager and gateway for LLM connections.

The package root is the Python SDK (``ump_llm_connections.sdk``); the server lives in the
subpackages and is not imported by ``import ump_llm_connections``.
"""

from ump_llm_connections.sdk import (
    Connection,
    ConnectionInactive,
    ConnectionManager,
    ConnectionNotFound,
    Forbidden,
    GatewayError,
    IntegrationNotEnabled,
    LLMResponse,
    ServerUnreachable,
    ToolCall,
    UMPError,
    Unauthorized,
    Usage,
    get_connection,
    get_connections,
)

__all__ = [
    "Connection",
    "ConnectionInactive",
    "ConnectionManager",
    "ConnectionNotFound",
    "Forbidden",
    "GatewayError",
    "IntegrationNotEnabled",
    "LLMResponse",
    "ServerUnreachable",
    "ToolCall",
    "UMPError",
    "Unauthorized",
    "Usage",
    "__version__",
    "get_connection",
    "get_connections",
]

__version__ = "0.1.0"
