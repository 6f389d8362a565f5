"""What the SDK raises: one base class, each subclass with a message that says what to do.

UMPError                   any failure the SDK reports (``.message``, ``.status``, ``.code``)
├── ServerUnreachable      the server did not answer (not running, wrong UMP_AI_API_URL)
├── Unauthorized           401: no token, or a bad, expired or revoked one (UMP_API_TOKEN)
├── Forbidden              403: the token's role, team or sources do not allow it
├── ConnectionNotFound     no connection or pool by that name or id (or not one you may see)
├── ConnectionInactive     it exists but is switched off
├── IntegrationNotEnabled  it is not enabled for LiveKit, MCP or automation
└── GatewayError           the gateway refused the call or the upstream failed
"""

from __future__ import annotations

__all__ = [
    "ConnectionInactive",
    "ConnectionNotFound",
    "Forbidden",
    "GatewayError",
    "IntegrationNotEnabled",
    "ServerUnreachable",
    "UMPError",
    "Unauthorized",
]


class UMPError(Exception):
    """``status`` is the HTTP status the server answered with (None: no answer); ``code`` its
    machine-readable reason (``model_not_found``, ``rate_limit_exceeded``, ...) when it gave one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class ServerUnreachable(UMPError):
    pass


class Unauthorized(UMPError):
    pass


class Forbidden(UMPError):
    pass


class ConnectionNotFound(UMPError):
    pass


class ConnectionInactive(UMPError):
    pass


class IntegrationNotEnabled(UMPError):
    pass


class GatewayError(UMPError):
    pass
