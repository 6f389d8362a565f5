"""The Python SDK: find the server's connections and call them through its gateway.

    from ump_llm_connections import get_connection

    connection = await get_connection("Local Ollama", use_in_automation=True)
    response = await connection.generate(prompt="Hello", max_tokens=50)
    print(response.text)

The module-level functions share one ``ConnectionManager`` made from the environment
(``UMP_AI_API_URL``, ``UMP_API_TOKEN``) on first use. ``ump_llm_connections.sync`` has the
same for code that is not async.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ump_llm_connections.sdk.connection import Connection, LLMResponse, ToolCall, Usage
from ump_llm_connections.sdk.errors import (
    ConnectionInactive,
    ConnectionNotFound,
    Forbidden,
    GatewayError,
    IntegrationNotEnabled,
    ServerUnreachable,
    UMPError,
    Unauthorized,
)
from ump_llm_connections.sdk.manager import ConnectionManager

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
    "default_manager",
    "get_connection",
    "get_connections",
]

_default: tuple[tuple[str | None, str | None], ConnectionManager] | None = None


def default_manager() -> ConnectionManager:
    """The manager the module-level functions use, made from the environment (again when
    ``UMP_AI_API_URL`` or ``UMP_API_TOKEN`` changes)."""
    global _default  # one per process and environment
    settings = (os.environ.get("UMP_AI_API_URL"), os.environ.get("UMP_API_TOKEN"))
    if _default is None or _default[0] != settings:
        _default = (settings, ConnectionManager())
    return _default[1]


async def get_connection(
    name_or_id: str | None = None,
    *,
    name: str | None = None,
    use_in_livekit: bool | None = None,
    use_in_mcp: bool | None = None,
    use_in_automation: bool | None = None,
) -> Connection:
    """``ConnectionManager().get_connection(...)`` on the default manager."""
    return await default_manager().get_connection(
        name_or_id,
        name=name,
        use_in_livekit=use_in_livekit,
        use_in_mcp=use_in_mcp,
        use_in_automation=use_in_automation,
    )


async def get_connections(
    *,
    use_in_livekit: bool | None = None,
    use_in_mcp: bool | None = None,
    use_in_automation: bool | None = None,
    connection_type: str | None = None,
    tags: Iterable[str] | None = None,
    is_active: bool | None = None,
) -> list[Connection]:
    """``ConnectionManager().get_connections(...)`` on the default manager."""
    return await default_manager().get_connections(
        use_in_livekit=use_in_livekit,
        use_in_mcp=use_in_mcp,
        use_in_automation=use_in_automation,
        connection_type=connection_type,
        tags=tags,
        is_active=is_active,
    )
